package browsertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/opscenter/opscenter/auth"
)

// TestLoginAndDeskLive logs in through the login page, sees an endpoint's incident
// arrive on the desk without a reload, searches without diacritics, and meets a
// version conflict that is shown rather than overwritten.
func TestLoginAndDeskLive(t *testing.T) {
	srv := startServer(t)
	pw := srv.user(t, "trucban", auth.RoleDuty)
	lpw := srv.user(t, "lanhdao", auth.RoleLeader)
	srv.startSession(t)
	dutyTok := staffToken(t, srv.URL, "trucban", pw)

	b := newBrowser(t, "desk", "")
	b.run(30*time.Second, chromedp.Navigate(srv.URL+"/login"))
	waitFor(b, "login page", `window.__ops && window.__ops.app === 'login'`, 30*time.Second)
	b.screenshot("login")
	// A wrong password stays on the page with a message.
	eval[bool](b, `(() => { document.getElementById('username').value = 'trucban';
		document.getElementById('password').value = 'wrong-password-123'; document.getElementById('submit').click(); return true; })()`)
	waitFor(b, "bad password message", `window.__ops.status === 'error' && document.getElementById('error').textContent.length > 0`, 30*time.Second)

	b.login(srv.URL, "trucban", pw, "/desk")
	waitFor(b, "desk live", `window.__ops.live === 'live'`, 30*time.Second)
	eval[bool](b, `(window.__noReload = true)`)

	// An endpoint reports; the row appears through the event stream.
	ep := srv.joinLink(t, "07192")
	epTok := ep[len(srv.URL+"/join#t="):]
	id := "0b1e0000-0000-4000-8000-000000000001"
	start := time.Now()
	if st := call(t, "POST", srv.URL+"/api/v1/incidents", epTok, map[string]any{
		"id": id, "endpoint_code": "07192", "category": "logistics", "severity": "high",
		"title": "Thiếu phiếu bầu ở tổ bầu cử số 3", "body": "Cần bổ sung 200 phiếu",
	}, nil); st != 201 {
		t.Fatalf("create incident: %d", st)
	}
	took := waitFor(b, "incident row", fmt.Sprintf(`!!document.querySelector('tr[data-id="%s"]') && window.__noReload === true`, id), 30*time.Second)
	t.Logf("incident reached the desk %v after the POST (%v after the poll began)", time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))

	// Diacritic-insensitive search (the server's q).
	eval[bool](b, `(() => { const q = document.getElementById('q'); q.value = 'thieu phieu'; q.dispatchEvent(new Event('input')); return true; })()`)
	waitFor(b, "search hit", fmt.Sprintf(`document.querySelectorAll('#incidents tr').length === 1 && !!document.querySelector('tr[data-id="%s"]')`, id), 30*time.Second)
	eval[bool](b, `(() => { const q = document.getElementById('q'); q.value = 'khong co gi'; q.dispatchEvent(new Event('input')); return true; })()`)
	waitFor(b, "search miss", `document.querySelectorAll('#incidents tr').length === 0`, 30*time.Second)
	eval[bool](b, `(() => { const q = document.getElementById('q'); q.value = ''; q.dispatchEvent(new Event('input')); return true; })()`)
	waitFor(b, "search cleared", fmt.Sprintf(`!!document.querySelector('tr[data-id="%s"]')`, id), 30*time.Second)

	// Open it, let someone else change it, then save: a conflict is shown.
	eval[bool](b, fmt.Sprintf(`(document.querySelector('tr[data-id="%s"]').click(), true)`, id))
	waitFor(b, "dialog open", `document.getElementById('incdlg').open && document.getElementById('ititle').value.length > 0`, 30*time.Second)
	var other map[string]any
	if st := call(t, "PATCH", srv.URL+"/api/v1/incidents/"+id, dutyTok, map[string]any{"version": 1, "status": "acknowledged", "assignee": "Đội hậu cần"}, &other); st != 200 {
		t.Fatalf("concurrent patch: %d %v", st, other)
	}
	eval[bool](b, `(() => { document.getElementById('iassignee').value = 'Tổ công tác số 2';
		document.getElementById('incsave').click(); return true; })()`)
	waitFor(b, "conflict shown", `window.__ops.conflict === true && !document.getElementById('conflict').classList.contains('hidden')
		&& document.getElementById('theirs').textContent.includes('Đội hậu cần') && document.getElementById('mine').textContent.includes('Tổ công tác số 2')`, 30*time.Second)
	b.screenshot("desk-conflict")
	var now map[string]any
	call(t, "GET", srv.URL+"/api/v1/incidents/"+id, dutyTok, nil, &now)
	if now["assignee"] != "Đội hậu cần" {
		t.Fatalf("the other edit was overwritten: %v", now)
	}
	// The user chooses to keep theirs: the form shows the server's version.
	eval[bool](b, `(document.getElementById('taketheirs').click(), true)`)
	waitFor(b, "took theirs", `document.getElementById('iassignee').value === 'Đội hậu cần' && window.__ops.conflict === false`, 5*time.Second)
	eval[bool](b, `(document.getElementById('inccancel').click(), true)`)

	// Language switch is remembered.
	eval[bool](b, `(document.getElementById('lang').click(), true)`)
	waitFor(b, "english", `document.documentElement.lang === 'en' && localStorage.getItem('ops.lang') === 'en'`, 5*time.Second)
	b.screenshot("desk-en")
	eval[bool](b, `(document.getElementById('lang').click(), true)`)
	b.screenshot("desk")

	// A leader lands on the console.
	b2 := newBrowser(t, "leader", "")
	b2.login(srv.URL, "lanhdao", lpw, "/console")
}
