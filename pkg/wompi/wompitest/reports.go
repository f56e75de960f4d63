package wompitest

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// reportMeta is a synthetic report execution [ours].
type reportMeta struct {
	id, reportType string
	start, end     time.Time
}

var periods = map[string]time.Duration{
	wompi.PeriodicityDaily: 24 * time.Hour, wompi.PeriodicityWeekly: 7 * 24 * time.Hour,
	wompi.PeriodicityBiweekly: 14 * 24 * time.Hour, wompi.PeriodicityMonthly: 30 * 24 * time.Hour,
}

// reportsPerQuery is how many executions a report query lists [ours].
const reportsPerQuery = 25

// handleReports is GET /reports/payouts [doc]: synthetic executions, the
// most recent first, one per period back from today [ours].
func (s *Server) handleReports(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page, msgs := s.pageArgs(q)
	per, typ := q.Get("periodicity"), q.Get("reportType")
	period, ok := periods[per]
	if !ok {
		msgs = append(msgs, "periodicity must be daily, weekly, biweekly or monthly")
	}
	if typ != wompi.ReportTypePayouts && typ != wompi.ReportTypeTransactions {
		msgs = append(msgs, "reportType must be payouts or transactions")
	}
	if len(msgs) > 0 {
		s.writeValidation(w, msgs)
		return
	}
	now := s.clock.Now().In(wompi.Bogota)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, wompi.Bogota)
	type reportView struct {
		ID             string  `json:"_id"`
		ReportID       string  `json:"reportId"`
		RunAt          *string `json:"runAt"`
		Status         string  `json:"status"`
		QueryStartDate *string `json:"queryStartDate"`
		QueryEndDate   *string `json:"queryEndDate"`
		FileBucketKey  string  `json:"fileBucketKey"`
	}
	all := make([]reportView, reportsPerQuery)
	s.mu.Lock()
	if s.reports == nil {
		s.reports = map[string]reportMeta{}
	}
	for i := range all {
		end := today.Add(-time.Duration(i) * period)
		start := end.Add(-period)
		id := uuid.NewSHA1(bankNamespace, []byte("report/"+per+"/"+typ+"/"+start.Format(time.DateOnly))).String()
		s.reports[id] = reportMeta{id: id, reportType: typ, start: start, end: end}
		all[i] = reportView{ID: id, ReportID: "sim-" + per + "-" + typ, RunAt: fmtTime(end.Add(time.Hour)),
			Status: "COMPLETED", QueryStartDate: fmtTime(start), QueryEndDate: fmtTime(end),
			FileBucketKey: "reports/" + typ + "/" + id + ".csv"}
	}
	s.mu.Unlock()
	lo, hi, pv := paginate(len(all), limit, page)
	pv.Records = all[lo:hi]
	s.writeData(w, http.StatusOK, pv)
}

// handlePresigned is GET /reports/presigned_url [doc]: {url} pointing at
// the simulator's own /_sim/reports/{id}.csv [ours].
func (s *Server) handlePresigned(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, integ := q.Get("reportExecutionId"), q.Get("reportIntegration")
	var msgs []string
	if id == "" {
		msgs = append(msgs, "reportExecutionId is required")
	}
	// [doc] both parameters; reportIntegration is payouts or merchant_reports.
	if integ != wompi.ReportIntegrationPayouts && integ != wompi.ReportIntegrationMerchant {
		msgs = append(msgs, "reportIntegration must be payouts or merchant_reports")
	}
	if len(msgs) > 0 {
		s.writeValidation(w, msgs)
		return
	}
	s.mu.Lock()
	_, ok := s.reports[id]
	s.mu.Unlock()
	if !ok {
		s.writeError(w, http.StatusNotFound, wompi.CodeNotFound, "report execution not found")
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	s.writeData(w, http.StatusOK, map[string]string{"url": scheme + "://" + r.Host + "/_sim/reports/" + id + ".csv"})
}

// handleReportCSV serves a report: its batches or transactions created in
// the report's window. No personal data [ours].
func (s *Server) handleReportCSV(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSuffix(r.PathValue("file"), ".csv")
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	s.mu.Lock()
	m, ok := s.reports[id]
	if ok {
		in := func(t time.Time) bool { return !t.Before(m.start) && t.Before(m.end) }
		if m.reportType == wompi.ReportTypePayouts {
			_ = cw.Write([]string{"id", "reference", "status", "amountInCents", "totalTransactions", "createdAt"})
			for _, b := range s.payouts {
				if in(b.createdAt) {
					_ = cw.Write([]string{b.id, b.reference, string(b.status), strconv.FormatInt(b.amount, 10),
						strconv.Itoa(len(b.txs)), *fmtTime(b.createdAt)})
				}
			}
		} else {
			_ = cw.Write([]string{"id", "payoutId", "reference", "status", "amountInCents", "failureCode", "createdAt"})
			for _, b := range s.payouts {
				if !in(b.createdAt) {
					continue
				}
				for _, t := range b.txs {
					_ = cw.Write([]string{t.id, b.id, t.w.Reference, string(t.status), strconv.FormatInt(t.w.Amount, 10),
						t.reason.Code, *fmtTime(t.createdAt)})
				}
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	cw.Flush()
	w.Header().Set("Content-Type", "text/csv")
	_, _ = w.Write(buf.Bytes())
}
