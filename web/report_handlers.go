package web

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"html/template"
	"net/http"
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
}).Parse(reportHTMLSource))

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
	ByStatus   []statusCount
	Acked      int
	Receipts   int
	Directives []directiveView
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

func (s *Server) loadReport(c *gin.Context) (store.Report, bool) {
	rep, err := s.Store.SessionReport(c.Request.Context(), c.Param("id"))
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
	v := reportView{Report: rep, Generated: time.Now()}
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
// incident_update, directive, receipt) and parent_id ties it to its owner.
var reportColumns = []string{"record_type", "id", "parent_id", "time", "endpoint_code", "endpoint_name",
	"kind", "category", "severity", "status", "title", "text", "by", "assignee", "occurred_at",
	"incident_id", "due_at", "delivered_at", "acked_at", "acked_by", "ack_via", "reply", "replied_by",
	"replied_at", "done_at", "planned_start", "planned_end", "actual_start", "actual_end"}

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
