package daemon

import (
	"fmt"
	"math"
	"strconv"

	"github.com/vipd/vipd/internal/control"
)

// The last drill drawn as a timeline on the status page: inline SVG built
// here (no script: the page's Content-Security-Policy forbids them). One
// row of probe results (ok, refused, timeout), one row of who answered,
// and a vertical line per mark: the fault, each node's transitions, the
// new master heard, the first success. Coordinates are computed in Go;
// the template only prints them.

type timelineView struct {
	W, H     int
	Rects    []svgRect
	Marks    []svgMark
	Ticks    []svgTick
	Legend   []svgLegend
	Summary  string // the same story in words (title and screen readers)
	RowY     [2]int // label baselines of the two rows
	AxisY    int
	PlotLeft int
}

type svgRect struct {
	X, Y, W, H float64
	Fill       string
	Title      string
}

type svgMark struct {
	X              float64
	Y1, Y2, LabelY int
	Label          string
	Anchor         string
	LabelX         float64
}

type svgTick struct {
	X             float64
	Y, Y2, LabelY int
	Label         string
}

type svgLegend struct {
	X, Y, TextX, TextY int
	Fill, Label        string
}

// Colours of probe results; the page's own palette.
var resultFill = map[string]string{"ok": "#1a7f37", "refused": "#cf222e", "timeout": "#bf8700", "error": "#6e7781"}

const (
	tlWidth, tlLeft, tlRight = 960, 120, 20
	tlLanes                  = 4 // mark label lanes
)

func buildTimeline(d control.DrillResult, self string) *timelineView {
	if len(d.Samples) == 0 && len(d.Marks) == 0 {
		return nil
	}
	tmin, tmax := 0.0, 0.0
	for _, s := range d.Samples {
		tmin, tmax = math.Min(tmin, s.TMs), math.Max(tmax, s.TMs+10)
	}
	for _, m := range d.Marks {
		tmin, tmax = math.Min(tmin, m.TMs), math.Max(tmax, m.TMs)
	}
	tmax += 10
	span := math.Max(tmax-tmin, 50)
	plotW := float64(tlWidth - tlLeft - tlRight)
	x := func(t float64) float64 { return math.Round((float64(tlLeft)+(t-tmin)/span*plotW)*10) / 10 }

	laneH := 16
	top := 8 + tlLanes*laneH
	v := &timelineView{W: tlWidth, PlotLeft: tlLeft}
	probeY, whoY := top+8, top+40
	v.RowY = [2]int{probeY + 16, whoY + 16}
	v.AxisY = whoY + 34
	v.H = v.AxisY + 40
	legendY := v.H - 14

	nodeFill := map[string]string{}
	palette := []string{"#8250df", "#bc4c00", "#1b7c83", "#6e7781"}
	fillOf := func(n string) string {
		if n == self {
			return "#0969da"
		}
		if f, ok := nodeFill[n]; ok {
			return f
		}
		f := palette[min(len(nodeFill), len(palette)-1)]
		nodeFill[n] = f
		return f
	}
	for i, s := range d.Samples {
		end := s.TMs + 10
		if i+1 < len(d.Samples) {
			end = d.Samples[i+1].TMs
		}
		w := math.Max(x(end)-x(s.TMs), 1.5)
		fill := resultFill[s.Result]
		if fill == "" {
			fill = resultFill["error"]
		}
		v.Rects = append(v.Rects, svgRect{X: x(s.TMs), Y: float64(probeY), W: w, H: 24, Fill: fill,
			Title: fmt.Sprintf("%s ms: %s", strconv.FormatFloat(s.TMs, 'f', 0, 64), s.Result)})
		if s.Node != "" {
			v.Rects = append(v.Rects, svgRect{X: x(s.TMs), Y: float64(whoY), W: w, H: 24, Fill: fillOf(s.Node),
				Title: fmt.Sprintf("%s ms: %s", strconv.FormatFloat(s.TMs, 'f', 0, 64), s.Node)})
		}
	}
	for i, m := range d.Marks {
		lane := i % tlLanes
		mk := svgMark{X: x(m.TMs), Y1: 8 + lane*laneH + 4, Y2: whoY + 28, LabelY: 8 + lane*laneH + 12,
			Label: fmt.Sprintf("%s ms %s", strconv.FormatFloat(m.TMs, 'f', 0, 64), m.What), Anchor: "start"}
		if m.Node != "" && m.What != "first success" {
			mk.Label += " (" + m.Node + ")"
		}
		mk.LabelX = mk.X + 3
		if mk.X > float64(tlWidth)*0.6 {
			mk.Anchor, mk.LabelX = "end", mk.X-3
		}
		v.Marks = append(v.Marks, mk)
	}
	step := 10.0
	for _, s := range []float64{10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000} {
		step = s
		if span/s <= 10 {
			break
		}
	}
	for t := math.Ceil(tmin/step) * step; t <= tmax; t += step {
		v.Ticks = append(v.Ticks, svgTick{X: x(t), Y: v.AxisY, Y2: v.AxisY + 4, LabelY: v.AxisY + 15, Label: strconv.FormatFloat(t, 'f', 0, 64) + " ms"})
	}
	lx := tlLeft
	for _, r := range []string{"ok", "refused", "timeout"} {
		v.Legend = append(v.Legend, svgLegend{X: lx, Y: legendY, TextX: lx + 14, TextY: legendY + 9, Fill: resultFill[r], Label: r})
		lx += 90
	}
	for _, n := range append([]string{self}, sortedNodes(nodeFill)...) {
		v.Legend = append(v.Legend, svgLegend{X: lx, Y: legendY, TextX: lx + 14, TextY: legendY + 9, Fill: fillOf(n), Label: "answered by " + n})
		lx += 160
	}
	v.Summary = fmt.Sprintf("%d probes from %s to %s ms; ", len(d.Samples),
		strconv.FormatFloat(tmin, 'f', 0, 64), strconv.FormatFloat(tmax, 'f', 0, 64))
	for i, m := range d.Marks {
		if i > 0 {
			v.Summary += " → "
		}
		v.Summary += fmt.Sprintf("%s at %s ms", m.What, strconv.FormatFloat(m.TMs, 'f', 0, 64))
	}
	return v
}

func sortedNodes(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
