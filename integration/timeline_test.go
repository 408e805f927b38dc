package integration

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/control"
)

// TestStatusPageDrillTimeline: a hard drill on a real pair records its
// probe timeline (`vipd drill -o json` has every probe), and the status
// page draws it as an inline SVG (no script: the page's CSP forbids
// them), as headless Chromium shows: the marks are in the visible text
// and the probe results are painted in their colours. The screenshot is
// kept in integration/artifacts/.
func TestStatusPageDrillTimeline(t *testing.T) {
	chromium := findChromium(t)
	perNode := func(name string) string { return "\n[http]\nlisten = \"127.0.0.1:9600\"\n" }
	p := newPairLab(t, lab.PairOptions{PerNode: perNode}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	awaitPeerBackup(t, p.n1, "lb2")
	out, err := vipdCLI(p.n1, "drill", "failover", "--hard", "--hold", "30s", "-o", "json")
	if err != nil {
		t.Fatalf("drill: %v\n%s", err, out)
	}
	var res control.DrillResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("drill output: %v\n%s", err, out)
	}
	failed := 0
	for _, s := range res.Samples {
		if s.Result != "ok" {
			failed++
		}
	}
	var marks []string
	for _, m := range res.Marks {
		marks = append(marks, m.What)
	}
	t.Logf("hard drill: gap %.0f ms, takeover %.0f ms, %d samples (%d failed), marks %q", res.GapMs, res.TakeoverMs, len(res.Samples), failed, marks)
	if len(res.Samples) < 20 || failed == 0 || res.Samples[0].Node != "lb1" || res.Samples[len(res.Samples)-1].Node != "lb2" {
		t.Errorf("samples: %d, %d failed, first %+v, last %+v", len(res.Samples), failed, res.Samples[0], res.Samples[len(res.Samples)-1])
	}
	if want := "new master heard"; !strings.Contains(strings.Join(marks, "|"), want) || marks[len(marks)-1] != "first success" && !strings.Contains(strings.Join(marks, "|"), "first success") {
		t.Errorf("marks %q", marks)
	}

	text := domText(runChromium(t, p.lb1, chromium, "--dump-dom", "http://127.0.0.1:9600/?refresh=0"))
	for _, want := range []string{"Last failover drill", "probe result", "answered by", "fault: hard leave (crash rehearsal) (lb1)",
		"new master heard (lb2", "first success", "answered by lb2"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not show %q\n%s", want, text)
		}
	}
	dir, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o755)
	shot := filepath.Join(dir, "drill-timeline.png")
	os.Remove(shot)
	runChromium(t, p.lb1, chromium, "--hide-scrollbars", "--window-size=1280,2600", "--screenshot="+shot, "http://127.0.0.1:9600/?refresh=0")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// Exact colours of the probe rects: ok #1a7f37, and the failures:
	// refused #cf222e or timeout #bf8700 (the master probing its own VIP
	// after dropping it gets no answer to its ARP until lb2 holds it).
	count := map[[3]uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			count[[3]uint32{r >> 8, g >> 8, bl >> 8}]++
		}
	}
	red := count[[3]uint32{0xcf, 0x22, 0x2e}] + count[[3]uint32{0xbf, 0x87, 0x00}]
	green := count[[3]uint32{0x1a, 0x7f, 0x37}]
	t.Logf("screenshot %s: %d failed (red, orange) and %d ok (green) pixels", shot, red, green)
	if red < 3000 || green < 1000 {
		t.Errorf("the timeline is not drawn: %d failed, %d ok pixels", red, green)
	}
}
