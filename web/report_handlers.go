package web

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/store"
)

// The report is read in the province, so its times are Indochina Time (UTC+7, no
// daylight saving); a fixed zone needs no tzdata on the server.
var reportZone = time.FixedZone("ICT", 7*3600)

//go:embed report.html.tmpl
var reportHTMLSource string

// reportTemplate is parsed once at start; a broken template fails the build's tests,
// not a request.
var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"when":     reportTime,
	"category": label(map[string]string{"security_order": "An ninh trật tự", "health_covid": "Y tế, COVID-19", "complaint": "Khiếu nại", "logistics": "Hậu cần", "communications": "Thông tin liên lạc", "other": "Khác"}),
	"severity": label(map[string]string{"info": "Thông tin", "low": "Thấp", "high": "Cao", "critical": "Khẩn cấp"}),
	"status":   label(map[string]string{"open": "Mới", "acknowledged": "Đã tiếp nhận", "in_progress": "Đang xử lý", "resolved": "Đã giải quyết", "closed": "Đã đóng"}),
	"via":      label(map[string]string{store.AckViaApp: "Ứng dụng", "phone": "Điện thoại", "radio": "Vô tuyến điện", "in_person": "Trực tiếp", "other": "Khác"}),
	"kind":     label(map[string]string{"comment": "Ghi chú", "change": "Thay đổi"}),
	"inc":      func(i int) int { return i + 1 },
	"num":      reportNum,
	"pct":      reportPct,
	"moment":   momentLink,
}).Parse(reportHTMLSource))

// momentLink opens the desk's player at a record's system time: the incident's
// marker on the video.
func momentLink(sessionID string, at time.Time) string {
	q := url.Values{"session": {sessionID}, "at": {at.UTC().Format(time.RFC3339Nano)}}
	return "/desk#player?" + q.Encode()
}

// reportNum writes a count the Vietnamese way, with dots between thousands: 959.021.
func reportNum(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// reportPct writes a percent with two decimals and a decimal comma: 99,95%.
func reportPct(p float64) string {
	return strings.Replace(strconv.FormatFloat(p, 'f', 2, 64), ".", ",", 1) + "%"
}

// turnoutCurveSVG draws the curve of the report's unit (the province, or a district
// report's district) for the printed report: percent over time, the 50% line, the
// last figure labelled. Only numbers, times and the fixed label go into it.
func turnoutCurveSVG(points []store.TurnoutSeriesPoint, label string) template.HTML {
	if len(points) == 0 {
		return ""
	}
	const W, H, L, R, T, B = 680.0, 240.0, 44.0, 16.0, 14.0, 28.0
	t0 := points[0].At
	span := points[len(points)-1].At.Sub(t0)
	if span < 10*time.Minute {
		span = 10 * time.Minute
	}
	x := func(t time.Time) float64 { return L + float64(t.Sub(t0))/float64(span)*(W-L-R) }
	y := func(p float64) float64 { return T + (1-min(100, max(0, p))/100)*(H-T-B) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="curve" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="Diễn biến tỷ lệ cử tri đi bầu %s">`, W, H, W, H, template.HTMLEscapeString(label))
	for _, p := range []float64{0, 25, 50, 75, 100} {
		dash := ""
		if p == 50 {
			dash = ` stroke-dasharray="5 3" stroke="#900"`
		} else {
			dash = ` stroke="#bbb"`
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"%s stroke-width="1"/>`, L, W-R, y(p), y(p), dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="11">%.0f%%</text>`, L-6, y(p)+4, p)
	}
	const ticks = 6
	for i := 0; i <= ticks; i++ {
		t := t0.Add(span * time.Duration(i) / ticks)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case ticks:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="11">%s</text>`, x(t), H-8, anchor, t.In(reportZone).Format("15:04"))
	}
	pts := make([]string, len(points))
	for i, p := range points {
		pts[i] = fmt.Sprintf("%.1f,%.1f", x(p.At), y(p.Percent))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#000" stroke-width="2"/>`, strings.Join(pts, " "))
	for _, p := range points {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="#000"/>`, x(p.At), y(p.Percent))
	}
	last := points[len(points)-1]
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="13" font-weight="bold">%s</text>`, x(last.At)-4, max(T+12, y(last.Percent)-6), reportPct(last.Percent))
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers and times only
}

func label(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok {
			return v
		}
		return k
	}
}

// reportTime accepts time.Time or *time.Time; nil or zero prints as a dash.
func reportTime(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return "—"
	}
	return t.In(reportZone).Format("15:04 02/01/2006")
}

// reportView is what the HTML template shows: the report plus the counts and the
// split between receipts with something to say and those not yet acknowledged.
type reportView struct {
	store.Report
	Generated  time.Time
	Video      bool // the reader may watch the record: each incident links to its moment
	ByStatus   []statusCount
	Acked      int
	Receipts   int
	Directives []directiveView
	// Turnout: the province's curve drawn, and the districts in the order they completed.
	Curve     template.HTML
	Completed []store.TurnoutUnit
}

// Whole names what the report covers, after "toàn": the province or the district.
func (v reportView) Whole() string {
	if v.Scope != "" {
		return "huyện"
	}
	return "tỉnh"
}

type statusCount struct {
	Status string
	N      int
}

type directiveView struct {
	store.Directive
	TargetText    string
	IncidentTitle string
	Active        []store.Receipt // acknowledged, replied or done
	Pending       []store.Receipt // not acknowledged
}

// loadReport reads the session's report; district-scoped staff get their district's
// (its units' incidents, directives and turnout).
func (s *Server) loadReport(c *gin.Context) (store.Report, bool) {
	rep, err := s.Store.ScopedSessionReport(c.Request.Context(), c.Param("id"), scopeOf(principal(c)))
	if err != nil {
		s.failErr(c, err)
		return rep, false
	}
	return rep, true
}

func (s *Server) reportHTML(c *gin.Context) {
	rep, ok := s.loadReport(c)
	if !ok {
		return
	}
	v := reportView{Report: rep, Generated: time.Now(), Video: unscopedStaff(principal(c))}
	counts := map[string]int{}
	for _, i := range rep.Incidents {
		counts[i.Status]++
	}
	for _, st := range store.IncidentStatuses {
		v.ByStatus = append(v.ByStatus, statusCount{st, counts[st]})
	}
	titles := map[string]string{}
	for _, i := range rep.Incidents {
		titles[i.ID] = i.Title
	}
	for _, d := range rep.Directives {
		dv := directiveView{Directive: d, TargetText: targetText(d)}
		if d.IncidentID != nil {
			dv.IncidentTitle = titles[*d.IncidentID]
		}
		for _, r := range d.Receipts {
			if r.AckedAt == nil {
				dv.Pending = append(dv.Pending, r)
			}
			if r.AckedAt != nil || r.RepliedAt != nil || r.DoneAt != nil {
				dv.Active = append(dv.Active, r)
			}
		}
		v.Receipts += len(d.Receipts)
		v.Acked += len(d.Receipts) - len(dv.Pending)
		v.Directives = append(v.Directives, dv)
	}
	v.Curve = turnoutCurveSVG(rep.Turnout.Curve, v.Whole())
	for _, d := range rep.Turnout.Districts {
		if d.CompletedAt != nil {
			v.Completed = append(v.Completed, d.TurnoutUnit)
		}
	}
	sort.SliceStable(v.Completed, func(i, j int) bool { return v.Completed[i].CompletedAt.Before(*v.Completed[j].CompletedAt) })
	var b strings.Builder
	if err := reportTemplate.Execute(&b, v); err != nil {
		s.failErr(c, fmt.Errorf("render report: %w", err))
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(b.String()))
}

// targetText says in Vietnamese whom a directive went to.
func targetText(d store.Directive) string {
	switch t := d.Targets; {
	case t.All:
		return "Tất cả các huyện và xã"
	case t.District != "":
		name := t.District
		for _, r := range d.Receipts {
			if r.EndpointCode == t.District {
				name = r.EndpointName + " (" + r.EndpointCode + ")"
			}
		}
		return name + " và các xã trực thuộc"
	default:
		names := make([]string, len(d.Receipts))
		for i, r := range d.Receipts {
			names[i] = r.EndpointName + " (" + r.EndpointCode + ")"
		}
		return strings.Join(names, ", ")
	}
}

// The CSV is one table: record_type says what each row is (session, incident,
// incident_update, directive, receipt, then turnout: turnout_unit for the province,
// each district and each commune, turnout_point for the province's curve) and
// parent_id ties it to its owner (a unit's parent code; the curve's province code).
var reportColumns = []string{"record_type", "id", "parent_id", "time", "endpoint_code", "endpoint_name",
	"kind", "category", "severity", "status", "title", "text", "by", "assignee", "occurred_at",
	"incident_id", "due_at", "delivered_at", "acked_at", "acked_by", "ack_via", "reply", "replied_by",
	"replied_at", "done_at", "planned_start", "planned_end", "actual_start", "actual_end",
	"registered", "voted", "percent", "units_complete", "units_total", "completed_at"}

type csvRow map[string]string

func (s *Server) reportCSV(c *gin.Context) {
	rep, ok := s.loadReport(c)
	if !ok {
		return
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="report-%s.csv"`, rep.Session.ID))
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	// The byte-order mark makes Excel read the file as UTF-8, so Vietnamese shows.
	if _, err := c.Writer.WriteString("\ufeff"); err != nil {
		return
	}
	w := csv.NewWriter(c.Writer)
	for _, row := range reportRows(rep) {
		rec := make([]string, len(reportColumns))
		for i, col := range reportColumns {
			rec[i] = cell(row[col])
		}
		if row == nil {
			copy(rec, reportColumns)
		}
		if err := w.Write(rec); err != nil {
			s.Log.Warn("write report", "err", err)
			return
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		s.Log.Warn("write report", "err", err)
	}
}

// reportRows lists the CSV rows; the first, nil, stands for the header.
func reportRows(rep store.Report) []csvRow {
	ts := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.In(reportZone).Format(time.RFC3339)
	}
	tv := func(t time.Time) string { return ts(&t) }
	se := rep.Session
	rows := []csvRow{nil, {"record_type": "session", "id": se.ID, "time": tv(se.CreatedAt), "title": se.Title, "by": se.CreatedBy,
		"planned_start": tv(se.PlannedStart), "planned_end": tv(se.PlannedEnd), "actual_start": ts(se.ActualStart), "actual_end": ts(se.ActualEnd)}}
	for _, i := range rep.Incidents {
		rows = append(rows, csvRow{"record_type": "incident", "id": i.ID, "parent_id": i.SessionID, "time": tv(i.CreatedAt),
			"endpoint_code": i.EndpointCode, "endpoint_name": i.EndpointName, "category": i.Category, "severity": i.Severity,
			"status": i.Status, "title": i.Title, "text": i.Body, "by": i.ReportedBy, "assignee": i.Assignee, "occurred_at": tv(i.OccurredAt)})
		for _, u := range i.Timeline {
			rows = append(rows, csvRow{"record_type": "incident_update", "id": strconv.FormatInt(u.ID, 10), "parent_id": i.ID,
				"time": tv(u.CreatedAt), "endpoint_code": i.EndpointCode, "endpoint_name": i.EndpointName, "kind": u.Kind, "text": u.Body, "by": u.Author})
		}
	}
	for _, d := range rep.Directives {
		inc := ""
		if d.IncidentID != nil {
			inc = *d.IncidentID
		}
		rows = append(rows, csvRow{"record_type": "directive", "id": d.ID, "parent_id": d.SessionID, "time": tv(d.CreatedAt),
			"kind": targetKind(d.Targets), "title": strings.Join(d.TargetCodes, " "), "text": d.Text, "by": d.IssuedBy,
			"incident_id": inc, "due_at": ts(d.DueAt)})
		for _, r := range d.Receipts {
			status := "pending"
			if r.AckedAt != nil {
				status = "acknowledged"
			}
			rows = append(rows, csvRow{"record_type": "receipt", "id": d.ID + "/" + r.EndpointCode, "parent_id": d.ID,
				"endpoint_code": r.EndpointCode, "endpoint_name": r.EndpointName, "status": status,
				"delivered_at": ts(r.DeliveredAt), "acked_at": ts(r.AckedAt), "acked_by": r.AckedBy, "ack_via": r.AckVia,
				"reply": r.Reply, "replied_by": r.RepliedBy, "replied_at": ts(r.RepliedAt), "done_at": ts(r.DoneAt)})
		}
	}
	tu := rep.Turnout
	unit := func(u store.TurnoutUnit, parent string) csvRow {
		status := ""
		if u.Complete {
			status = "complete"
		}
		return csvRow{"record_type": "turnout_unit", "id": u.Code, "parent_id": parent, "time": tv(tu.At),
			"endpoint_code": u.Code, "endpoint_name": u.Name, "kind": u.Kind, "status": status,
			"registered": strconv.FormatInt(u.Registered, 10), "voted": strconv.FormatInt(u.Voted, 10),
			"percent": strconv.FormatFloat(u.Percent, 'f', 2, 64), "units_complete": strconv.Itoa(u.UnitsComplete),
			"units_total": strconv.Itoa(u.UnitsTotal), "completed_at": ts(u.CompletedAt)}
	}
	if tu.Province.Code != "" {
		rows = append(rows, unit(tu.Province, ""))
	}
	for _, d := range tu.Districts {
		rows = append(rows, unit(d.TurnoutUnit, tu.Province.Code))
		for _, c := range d.Communes {
			rows = append(rows, unit(c, d.Code))
		}
	}
	for i, p := range tu.Curve { // the curve of the report's unit: the province or the district
		rows = append(rows, csvRow{"record_type": "turnout_point", "id": strconv.Itoa(i + 1), "parent_id": tu.Top.Code,
			"time": tv(p.At), "endpoint_code": tu.Top.Code, "endpoint_name": tu.Top.Name, "kind": tu.Top.Kind,
			"registered": strconv.FormatInt(tu.Top.Registered, 10), "voted": strconv.FormatInt(p.Voted, 10),
			"percent": strconv.FormatFloat(p.Percent, 'f', 2, 64)})
	}
	return rows
}

func targetKind(t store.Targets) string {
	switch {
	case t.All:
		return "all"
	case t.District != "":
		return "district:" + t.District
	default:
		return "endpoints"
	}
}

// cell keeps text that people typed from being run as a spreadsheet formula.
func cell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
