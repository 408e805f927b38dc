package integration

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// BenchmarkFootprint measures what a steady HA-pair node costs, the
// figures the static pod's resource requests are sized from
// (internal/manifest requestMemory, requestCPU): three stand-in
// apiservers checked over HTTPS /readyz every 2 s, 200 ms adverts, the
// status listener on, no client traffic. After the election settles it
// reports each node's RSS and its CPU time over a 30 s window.
//
//	go test -run '^$' -bench Footprint -benchtime 1x ./integration/
func BenchmarkFootprint(b *testing.B) {
	lab.RequireRoot(b)
	l := lab.NewLab(b)
	lb1, lb2 := l.AddHost("lb1", 11), l.AddHost("lb2", 12)
	cps := []*lab.Host{l.AddHost("cp1", 31), l.AddHost("cp2", 32), l.AddHost("cp3", 33)}
	pki := lab.NewPKI(b, cps[0].Addr, cps[1].Addr, cps[2].Addr)
	for _, h := range cps {
		lab.StartControlPlane(b, h, pki)
	}
	nodes := l.StartNodes(b, lab.PairOptions{VIP: l.Addr(10), Backends: cps, HTTP: "127.0.0.1:9600",
		Check: fmt.Sprintf(`{ type = "https", path = "/readyz", ca = %q }`, pki.CA)},
		[]lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)})
	nodes[0].AwaitState("MASTER", 5*time.Second)
	nodes[1].AwaitState("BACKUP", 5*time.Second)
	const window = 30 * time.Second
	for i := 0; i < b.N; i++ {
		time.Sleep(5 * time.Second) // checks completed rounds; steady state
		before := []int{cpuTicks(b, nodes[0].Pid()), cpuTicks(b, nodes[1].Pid())}
		time.Sleep(window)
		for j, n := range nodes {
			ms := float64(cpuTicks(b, n.Pid())-before[j]) * 1000 / 100 / window.Seconds() // USER_HZ = 100
			st, err := n.Stats()
			if err != nil {
				b.Fatal(err)
			}
			rss := st.RSSKB
			b.ReportMetric(ms, n.Name+"-cpu-ms/s")
			b.ReportMetric(float64(rss)/1024, n.Name+"-rss-MiB")
			b.Logf("%s (%s): %.1f ms CPU per second (%.1f millicores), RSS %.1f MiB", n.Name, n.State(), ms, ms, float64(rss)/1024)
		}
	}
}

// cpuTicks is utime+stime of a process in clock ticks.
func cpuTicks(tb testing.TB, pid int) int {
	tb.Helper()
	f := statFields(tb, pid)
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime + stime
}

// childTicks is the CPU time, in ticks, of pid's children that it has
// waited for (cutime + cstime).
func childTicks(tb testing.TB, pid int) int {
	tb.Helper()
	f := statFields(tb, pid)
	cutime, _ := strconv.Atoi(f[13])
	cstime, _ := strconv.Atoi(f[14])
	return cutime + cstime
}

// statFields returns the fields of /proc/pid/stat after the command name:
// the state is [0], utime [11].
func statFields(tb testing.TB, pid int) []string {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
}
