package main

import (
	"fmt"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The plots are drawn from the benchmark's own data (benchData) with
// gonum.org/v1/plot, as SVG beside docs/benchmarks.md.

var (
	configColors = []color.RGBA{{9, 105, 218, 255}, {130, 80, 223, 255}, {207, 34, 46, 255}, {188, 76, 0, 255}}
	resultColors = map[string]color.RGBA{"ok": {26, 127, 55, 255}, "refused": {207, 34, 46, 255}, "timeout": {191, 135, 0, 255}, "error": {110, 119, 129, 255}}
)

func timelineFile(f string) string {
	return "failover-timeline-" + strings.ReplaceAll(strings.ToLower(f), " ", "-") + ".svg"
}

func writePlots(d *benchData, dir string) error {
	if err := gapPlot(d, filepath.Join(dir, "failover-gaps.svg")); err != nil {
		return err
	}
	for _, f := range d.Faults {
		if err := timelinePlot(d, f, filepath.Join(dir, timelineFile(f.Name))); err != nil {
			return err
		}
	}
	return nil
}

// gapPlot: every run's gap per fault (log scale), one colour per
// configuration, with its median as a bar.
func gapPlot(d *benchData, path string) error {
	p := plot.New()
	p.Title.Text = "Client-visible gap per fault (every run; bar: median)"
	p.Y.Label.Text = "gap (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var names []string
	for _, f := range d.Faults {
		names = append(names, f.Name)
	}
	p.NominalX(names...)
	rng := rand.New(rand.NewPCG(1, 2))
	width := 0.8 / float64(len(d.Configs))
	for ci, c := range d.Configs {
		var pts, meds plotter.XYs
		for fi, f := range d.Faults {
			x0 := float64(fi) - 0.4 + width*(float64(ci)+0.5)
			s, ok := d.summarize(c.Name, f.Name)
			if !ok || s.n == 0 {
				continue
			}
			for _, g := range s.gaps {
				pts = append(pts, plotter.XY{X: x0 + (rng.Float64()-0.5)*width*0.6, Y: math.Max(g, 1)})
			}
			meds = append(meds, plotter.XY{X: x0, Y: math.Max(s.gapMed, 1)})
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		col := configColors[ci%len(configColors)]
		sc.GlyphStyle.Color, sc.GlyphStyle.Radius, sc.GlyphStyle.Shape = col, vg.Points(1.8), draw.CircleGlyph{}
		med, err := plotter.NewScatter(meds)
		if err != nil {
			return err
		}
		med.GlyphStyle.Color, med.GlyphStyle.Radius, med.GlyphStyle.Shape = col, vg.Points(7), barGlyph{}
		p.Add(sc, med)
		p.Legend.Add(c.Short, sc)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.X.Min, p.X.Max = -0.5, float64(len(d.Faults))-0.5
	p.Y.Min = 1 // a run without a gap is drawn at 1 ms
	p.Y.Max = math.Max(p.Y.Max*2, 10)
	p.Add(plotter.NewGrid())
	return p.Save(11*vg.Inch, 5*vg.Inch, path)
}

// barGlyph is a short horizontal bar: a median.
type barGlyph struct{}

func (barGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: vg.Points(2)})
	var path vg.Path
	path.Move(vg.Point{X: pt.X - sty.Radius, Y: pt.Y})
	path.Line(vg.Point{X: pt.X + sty.Radius, Y: pt.Y})
	c.Stroke(path)
}

// timelinePlot: the median run of each configuration for one fault, one
// panel each (its own time scale: keepalived's seconds would flatten
// vipd's milliseconds): every attempt at its start time, coloured by its
// result, and the run's marks (fault, process exited, lb2 claims the VIP,
// cleanup done, lb1's last ARP reply, first success) as labelled lines.
func timelinePlot(d *benchData, f fault, path string) error {
	var panels []*plot.Plot
	for ci, c := range d.Configs {
		idx := d.medianRun(c.Name, f.Name)
		if idx < 0 {
			continue
		}
		r := d.Runs[idx]
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s, %s: median run (gap %.0f ms)", c.Short, f.Name, r.GapMs)
		p.Title.TextStyle.Font.Size = vg.Points(10)
		p.X.Label.Text = "ms from the fault"
		xmax := r.GapMs
		for _, m := range r.Timeline.Marks {
			xmax = math.Max(xmax, m.TMs)
		}
		xmax = xmax*1.25 + 40
		xmin := -0.12 * xmax
		byRes := map[string]plotter.XYs{}
		for _, pr := range r.Timeline.Probes {
			if pr.TMs >= xmin && pr.TMs <= xmax {
				byRes[pr.Res] = append(byRes[pr.Res], plotter.XY{X: pr.TMs, Y: 0})
			}
		}
		for _, res := range []string{"ok", "refused", "timeout", "error"} {
			if len(byRes[res]) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(byRes[res])
			if err != nil {
				return err
			}
			sc.GlyphStyle.Color, sc.GlyphStyle.Radius, sc.GlyphStyle.Shape = resultColors[res], vg.Points(2.5), draw.BoxGlyph{}
			p.Add(sc)
			if len(panels) == 0 {
				p.Legend.Add("attempt "+res, sc)
			}
		}
		var xys plotter.XYs
		var labels []string
		n := 0
		for _, m := range r.Timeline.Marks {
			if m.TMs > xmax {
				continue
			}
			y := 0.25 + 0.22*float64(n)
			n++
			line, err := plotter.NewLine(plotter.XYs{{X: m.TMs, Y: -0.15}, {X: m.TMs, Y: y}})
			if err != nil {
				return err
			}
			line.LineStyle.Color, line.LineStyle.Width = color.Gray{Y: 60}, vg.Points(0.6)
			line.LineStyle.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
			p.Add(line)
			xys = append(xys, plotter.XY{X: m.TMs, Y: y})
			labels = append(labels, fmt.Sprintf(" %.0f ms: %s ", m.TMs, m.What))
		}
		if len(xys) > 0 {
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
			if err != nil {
				return err
			}
			for i := range lb.TextStyle {
				lb.TextStyle[i].Font.Size = vg.Points(8)
				lb.TextStyle[i].YAlign = draw.YCenter
				if xys[i].X > xmin+0.55*(xmax-xmin) {
					lb.TextStyle[i].XAlign = draw.XRight
				}
			}
			p.Add(lb)
		}
		p.X.Min, p.X.Max = xmin, xmax
		p.Y.Min, p.Y.Max = -0.3, 0.25+0.22*float64(max(n, 1))+0.1
		p.Y.Tick.Marker = plot.ConstantTicks(nil)
		p.Y.Label.Text = c.Short
		p.Y.Label.TextStyle.Color = configColors[ci%len(configColors)]
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.TextStyle.Font.Size = vg.Points(8)
		p.Add(plotter.NewGrid())
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return nil
	}
	w, h := 10*vg.Inch, vg.Length(len(panels))*2.1*vg.Inch
	c := vgsvg.New(w, h)
	rows := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		rows[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(rows, draw.Tiles{Rows: len(panels), Cols: 1, PadY: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4)}, draw.New(c))
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(out); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
