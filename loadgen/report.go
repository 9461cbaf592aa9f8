package loadgen

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// WriteTable prints results as an aligned table.
func WriteTable(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tN\tconn\tsrv cores\tRSS MiB\tfwd pkt/s\tfwd Mbit/s\tpkt/CPU-s\tin-srv p50 µs\tp99 µs\tp999 µs\te2e p50 ms\tp99 ms\tp999 ms\tloss %\tjoin p50 ms\tp99 ms\tgen cores\tlimit\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%.0f\t%.0f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.3f\t%.0f\t%.0f\t%.3f\t%s\t\n",
			r.Scenario, r.N, r.Endpoints, r.ServerCores, r.ServerRSSMiB, r.FwdPPS, r.FwdMbps, r.PktsPerCPUSec,
			r.InServerP50Us, r.InServerP99Us, r.InServerP999Us, r.E2EP50Ms, r.E2EP99Ms, r.E2EP999Ms,
			r.Loss*100, r.JoinP50Ms, r.JoinP99Ms, r.GenCores, r.Limit)
	}
	_ = tw.Flush()
}

// MarkdownRow is one row for docs/benchmarks.md.
func MarkdownRow(r Result) string {
	return fmt.Sprintf("| %s | %d | %d | %.3f | %.0f | %.0f | %.1f | %.0f | %.0f / %.0f / %.0f | %.2f / %.2f / %.2f | %.3f | %.0f / %.0f | %.3f | %s |",
		r.Scenario, r.N, r.Endpoints, r.ServerCores, r.ServerRSSMiB, r.FwdPPS, r.FwdMbps, r.PktsPerCPUSec,
		r.InServerP50Us, r.InServerP99Us, r.InServerP999Us, r.E2EP50Ms, r.E2EP99Ms, r.E2EP999Ms,
		r.Loss*100, r.JoinP50Ms, r.JoinP99Ms, r.GenCores, strings.TrimSpace(r.Limit+" load "+r.Load))
}

// MarkdownHeader is the header for MarkdownRow.
const MarkdownHeader = "| scenario | N | endpoints | server cores | RSS MiB | fwd pkt/s | fwd Mbit/s | pkt per CPU-s | in-server µs p50/p99/p999 | e2e ms p50/p99/p999 | loss % | join ms p50/p99 | generator cores | notes |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
