using System.Text;
using PeftWorkbench.Analysis;
using XPlot.Plotly;

namespace PeftWorkbench.Plots;

/// <summary>
/// The analysis charts (XPlot.Plotly 4.1, plotly.js 1.58): each has a title, axis labels and a legend, and
/// <see cref="SaveHtml"/> writes any chart as a standalone page that renders offline (plotly.js inline).
/// </summary>
public static class Charts
{
    static Layout.Layout Layout(string title, string x, string y, bool legend = true) => new()
    {
        title = title, xaxis = new Xaxis { title = x }, yaxis = new Yaxis { title = y }, showlegend = legend,
    };

    /// <summary>A method-by-method statistic as a heatmap; methods in hierarchical-clustering order unless told not to.</summary>
    public static PlotlyChart Heatmap(MethodMatrix matrix, bool cluster = true, string? title = null)
    {
        var m = cluster ? Agreement.Clustered(matrix) : matrix;
        int k = m.Methods.Count;
        // plotly draws row 0 at the bottom: z[i] is the row for y[i].
        var z = Enumerable.Range(0, k).Select(i => Enumerable.Range(0, k).Select(j => double.IsNaN(m.Values[i, j]) ? (double?)null : m.Values[i, j]).ToArray()).ToArray();
        var trace = new Heatmap { z = z, x = m.Methods.ToArray(), y = m.Methods.ToArray(), name = m.Statistic, colorscale = "Viridis", showscale = true };
        var layout = Layout(title ?? $"{m.Statistic}{(cluster ? " (methods ordered by clustering)" : "")}", "method", "method");
        layout.margin = new Margin { l = 140, b = 120 }; // room for method names such as rand_h_adapter
        return Chart.Plot(trace, layout);
    }

    /// <summary>
    /// A three-set Venn diagram drawn with circle shapes and count annotations: ours in each region and, when
    /// <paramref name="study"/> is given, the study's count for the same region in brackets.
    /// </summary>
    public static PlotlyChart Venn3(VennCounts ours, VennCounts? study = null, string? title = null)
    {
        if (ours.Methods.Count != 3) throw new ArgumentException($"Venn3 draws 3 sets; this one has {ours.Methods.Count} (use UpSet for 4).");
        (double X, double Y)[] centres = { (-0.6, 0.35), (0.6, 0.35), (0, -0.65) };
        string[] colours = { "rgba(220,50,50,0.25)", "rgba(50,90,220,0.25)", "rgba(40,160,60,0.25)" };
        const double r = 1.1;
        var shapes = centres.Select((c, i) => new Shape
        {
            type = "circle", xref = "x", yref = "y", x0 = c.X - r, y0 = c.Y - r, x1 = c.X + r, y1 = c.Y + r,
            fillcolor = colours[i], line = new Line { color = colours[i].Replace("0.25", "1") },
        }).ToArray();
        // Where each region's label sits.
        var spot = new Dictionary<int, (double, double)>
        {
            [1] = (-1.15, 0.75), [2] = (1.15, 0.75), [4] = (0, -1.3), [3] = (0, 0.85), [5] = (-0.75, -0.35), [6] = (0.75, -0.35), [7] = (0, 0.05),
        };
        string Label(int mask) => study is null ? $"{ours[mask]}" : $"{ours[mask]}<br>({study[mask]})";
        var notes = spot.Select(kv => new Annotation { x = kv.Value.Item1, y = kv.Value.Item2, text = Label(kv.Key), showarrow = false, xref = "x", yref = "y" })
            .Concat(centres.Select((c, i) => new Annotation
            {
                x = c.X + (i == 0 ? -0.9 : i == 1 ? 0.9 : 0), y = c.Y + (i == 2 ? -1.3 : 1.25),
                text = study is null ? ours.Methods[i] : $"{ours.Methods[i]} ({study.Methods[i]})", showarrow = false, xref = "x", yref = "y",
            })).ToArray();
        // Marker traces outside the axis ranges give the legend one entry per set (shapes have none).
        var legend = centres.Select((c, i) => (Trace)new Scatter
        {
            x = new[] { 10.0 }, y = new[] { 10.0 }, mode = "markers", name = ours.Methods[i],
            marker = new Marker { color = colours[i].Replace("0.25", "1"), size = 10 },
        }).ToList();
        var layout = Layout(title ?? ours.What + (study is null ? "" : "; (study)"), "", "");
        layout.shapes = shapes;
        layout.annotations = notes;
        layout.width = 640; layout.height = 600;
        layout.xaxis = new Xaxis { title = "ours (study's count in brackets)", range = new[] { -2.2, 2.2 }, showgrid = false, zeroline = false, showticklabels = false };
        layout.yaxis = new Yaxis { title = "", range = new[] { -2.0, 2.0 }, showgrid = false, zeroline = false, showticklabels = false };
        return Chart.Plot(legend, layout);
    }

    /// <summary>UpSet-style bars: one bar per region (any number of sets), ours and, if given, the study's share of K.</summary>
    public static PlotlyChart UpSet(VennCounts ours, VennCounts? study = null, string? title = null)
    {
        var regions = ours.Masks.Select(ours.RegionName).ToArray();
        var traces = new List<Trace> { new Bar { x = regions, y = ours.Masks.Select(m => ours[m]).ToArray(), name = $"ours (K = {ours.K})" } };
        if (study is not null && study.Methods.Count == ours.Methods.Count)
            traces.Add(new Bar { x = regions, y = ours.Masks.Select(m => (double)study[m] * ours.K / study.K).ToArray(), name = $"study, scaled to K = {ours.K}" });
        var layout = Layout(title ?? ours.What, "region (samples in exactly these sets)", "samples");
        layout.barmode = "group";
        return Chart.Plot(traces, layout);
    }

    /// <summary>The study's Figure 1a: linear probe at 0 (cross), full FT (square), PEFT range (vertical line), tasks grouped.</summary>
    public static PlotlyChart GainOverLinear(IReadOnlyList<Score> scores, string? title = null)
    {
        var rows = Analysis.GainOverLinear.Rows(scores);
        var x = rows.Select(r => $"{r.Group}/{r.Task}").ToArray();
        var range = new Scatter
        {
            x = x.SelectMany(t => new object?[] { t, t, null }).ToArray(),
            y = rows.SelectMany(r => new object?[] { r.PeftMinGain, r.PeftMaxGain, null }).ToArray(),
            mode = "lines+markers", name = "PEFT methods (least to most accurate)", line = new Line { color = "crimson", width = 4 },
            marker = new Marker { color = "crimson", symbol = "line-ew", size = 10 },
        };
        var linear = new Scatter { x = x, y = rows.Select(_ => 0.0).ToArray(), mode = "markers", name = "linear probe",
            marker = new Marker { symbol = "x", size = 10, color = "black" } };
        var full = new Scatter { x = x, y = rows.Select(r => r.FullGain).ToArray(), mode = "markers", name = "full fine-tuning",
            marker = new Marker { symbol = "square", size = 9, color = "royalblue" } };
        var layout = Layout(title ?? "Gain over linear probing per task (Figure 1a)", "task (grouped: natural, specialized, structured)", "top-1 gain over linear probe (points)");
        SlantedTickLabels(layout, x);
        return Chart.Plot(new Trace[] { range, linear, full }, layout);
    }

    /// <summary>
    /// Long category labels (such as "specialized/diabetic_retinopathy") at a fixed 45 degrees, with a bottom margin
    /// sized to the longest one. plotly.js 1.58 chooses the angle itself (90 degrees when crowded) and moves the axis
    /// title below the labels only within the margin, so a fixed margin either leaves blank space under short labels or
    /// lets long ones run into the title.
    /// </summary>
    internal static void SlantedTickLabels(Layout.Layout layout, IEnumerable<string> labels)
    {
        const double charWidth = 7.0, titleRoom = 50; // 12 px font: about 7 px a character; the title and its gap
        int longest = labels.Select(l => l.Length).DefaultIfEmpty(0).Max();
        layout.xaxis.tickangle = 45;
        layout.margin = new Margin { b = (int)Math.Ceiling(titleRoom + longest * charWidth * Math.Sin(Math.PI / 4)) };
    }

    /// <summary>Mean rank per method (bars), from <see cref="Ranks.MeanRank"/>'s inputs.</summary>
    public static PlotlyChart MeanRank(IReadOnlyList<Score> scores, string? title = null)
    {
        var table = Ranks.RankAll(scores).GroupBy(r => r.S.Method).Select(g => (g.Key, g.Average(x => (double)x.Rank))).OrderBy(t => t.Item2).ToList();
        var bar = new Bar { x = table.Select(t => t.Key).ToArray(), y = table.Select(t => t.Item2).ToArray(), name = "mean rank over tasks" };
        return Chart.Plot(bar, Layout(title ?? "Mean rank by test top-1 (1 = best)", "method", "mean rank"));
    }

    /// <summary>Per task: the best single member's test top-1 (the best of any ensemble shown) beside each selection and rule's ensemble.</summary>
    public static PlotlyChart EnsembleGains(IReadOnlyList<EnsembleResult> results, string? title = null)
    {
        var tasks = results.Select(r => r.Task).Distinct().ToArray();
        var traces = new List<Trace>
        {
            new Bar { x = tasks, y = tasks.Select(t => results.Where(r => r.Task == t).Max(r => r.BestMemberTest)).ToArray(), name = "best single member" },
        };
        foreach (var (selection, rule) in results.Select(r => (r.Selection, r.Rule)).Distinct())
            traces.Add(new Bar
            {
                x = tasks, y = tasks.Select(t => results.FirstOrDefault(r => r.Task == t && r.Rule == rule && r.Selection == selection)?.TestTop1 ?? double.NaN).ToArray(),
                name = selection == Ensembles.GreedyOnVal ? $"greedy ensemble, {rule}" : $"{selection}, {rule}",
            });
        var layout = Layout(title ?? "Ensembles chosen on val, scored on test", "task", "test top-1 (%)");
        layout.barmode = "group";
        return Chart.Plot(traces, layout);
    }

    /// <summary>Side-by-side bars of ours and the paper's number per row of a table with columns label, ours, paper.</summary>
    public static PlotlyChart Beside(IReadOnlyList<string> labels, IReadOnlyList<double> ours, IReadOnlyList<double> paper, string title, string xTitle, string yTitle)
    {
        var traces = new Trace[]
        {
            new Bar { x = labels.ToArray(), y = ours.ToArray(), name = "ours" },
            new Bar { x = labels.ToArray(), y = paper.ToArray(), name = "paper" },
        };
        var layout = Layout(title, xTitle, yTitle);
        layout.barmode = "group";
        return Chart.Plot(traces, layout);
    }

    /// <summary>Group means of ours and the paper's per method (from <see cref="Paper.Beside"/>), for one group ("all" = every task).</summary>
    public static PlotlyChart BesidePaper(IReadOnlyList<Score> ours, string group = "all", string metric = "last")
    {
        var df = Paper.Beside(ours, metric);
        var rows = Enumerable.Range(0, (int)df.Rows.Count).Where(i => (string)df["group"][i] == group).ToList();
        return Beside(rows.Select(i => (string)df["method"][i]).ToList(), rows.Select(i => (double)df["ours"][i]).ToList(), rows.Select(i => (double)df["paper"][i]).ToList(),
            $"Mean test top-1 per method, {group} tasks: ours (mini suite) beside the paper (VTAB-1K)", "method", "mean top-1 (%)");
    }

    /// <summary>A sensitivity curve (<see cref="Sensitivity"/>) for one hyperparameter: our best val200 top-1 at each value
    /// beside the paper's (mean over its tasks); a log axis where every value is a positive number.</summary>
    public static PlotlyChart Sensitivity(IReadOnlyList<SensitivityPoint> ours, IReadOnlyList<SensitivityPoint> paper, string axis, string? title = null)
    {
        var all = ours.Concat(paper).Where(p => p.Axis == axis).ToList();
        bool numeric = all.All(p => double.TryParse(p.Value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var x) && x > 0);
        Trace Line(IReadOnlyList<SensitivityPoint> curve, string name) => new Scatter
        {
            x = curve.Where(p => p.Axis == axis).Select(p => numeric ? (object)double.Parse(p.Value, System.Globalization.CultureInfo.InvariantCulture) : p.Value).ToArray(),
            y = curve.Where(p => p.Axis == axis).Select(p => p.Top1).ToArray(), mode = "lines+markers", name = name,
        };
        var layout = Layout(title ?? $"Sensitivity to {axis}: best val200 top-1 with {axis} fixed, the rest tuned", axis, "val200 top-1 (%)");
        layout.xaxis.type = numeric ? "log" : "category";
        var traces = new[] { (ours, "ours (mini suite)"), (paper, $"paper (VTAB-1K, mean over {paper.Where(p => p.Axis == axis).Select(p => p.Tasks).DefaultIfEmpty(0).Max()} tasks)") }
            .Where(c => c.Item1.Any(p => p.Axis == axis)).Select(c => Line(c.Item1, c.Item2)); // a curve without this axis draws nothing
        return Chart.Plot(traces, layout);
    }

    /// <summary>
    /// Test top-1 against trainable parameters (head excluded) on a log x axis, per dataset: a line through each method's
    /// capacities, a marker for a method with one setting, and the linear probe (0 parameters, off a log axis) as a dashed
    /// level line. One colour per dataset.
    /// </summary>
    public static PlotlyChart AccuracyVsParams(IReadOnlyList<Findings.CapacityPoint> points, string? title = null)
    {
        string[] colours = { "crimson", "royalblue", "seagreen", "darkorange", "purple", "gray" };
        string[] symbols = { "circle", "square", "diamond", "triangle-up", "cross", "star" };
        var positive = points.Where(p => p.TrainableParams > 0).Select(p => (double)p.TrainableParams).DefaultIfEmpty(1).ToList();
        double lo = positive.Min() / 2, hi = positive.Max() * 2;
        var methods = points.Select(p => p.Method).Distinct().ToList();
        var traces = new List<Trace>();
        foreach (var (dataset, d) in points.Select(p => p.Dataset).Distinct().Select((x, i) => (x, i)))
        {
            var colour = colours[d % colours.Length];
            foreach (var g in points.Where(p => p.Dataset == dataset).GroupBy(p => p.Method))
            {
                var ps = g.OrderBy(p => p.TrainableParams).ToList();
                if (g.Key == "linear")
                {
                    traces.Add(new Scatter { x = new[] { lo, hi }, y = new[] { ps[0].Top1, ps[0].Top1 }, mode = "lines",
                        name = $"{dataset}: linear probe (0 params)", line = new Line { color = colour, dash = "dash" } });
                    continue;
                }
                traces.Add(new Scatter
                {
                    x = ps.Select(p => (double)p.TrainableParams).ToArray(), y = ps.Select(p => p.Top1).ToArray(),
                    mode = ps.Count > 1 ? "lines+markers" : "markers", name = $"{dataset}: {g.Key}", text = ps.Select(p => p.Label).ToArray(),
                    line = new Line { color = colour }, marker = new Marker { color = colour, size = 10, symbol = symbols[methods.IndexOf(g.Key) % symbols.Length] },
                });
            }
        }
        var layout = Layout(title ?? "Test top-1 against trainable parameters", "trainable parameters without the head (log scale)", "test top-1 (%)");
        layout.xaxis.type = "log";
        return Chart.Plot(traces, layout);
    }

    /// <summary>
    /// Notebook 07's heat map: a value per (row, size) on a diverging scale centred on 0 (blue above, red below), each
    /// cell written over with its label (its value and best PEFT method); missing cells stay blank.
    /// </summary>
    public static PlotlyChart RegimeHeatmap(IReadOnlyList<string> rows, IReadOnlyList<int> sizes, Func<string, int, (double Value, string Label)?> cell,
        string? title = null)
    {
        // Labels that are not numbers: plotly then draws one equal column per size (as numbers, 50 and 800 would be 750 apart).
        string Column(int s) => $"n={s}";
        var x = sizes.Select(Column).ToArray();
        // plotly draws row 0 at the bottom: z[i] is the row for y[i].
        var z = rows.Select(r => sizes.Select(s => cell(r, s)?.Value).ToArray()).ToArray();
        double span = Math.Max(1, z.SelectMany(v => v).Where(v => v is not null).Select(v => Math.Abs(v!.Value)).DefaultIfEmpty(1).Max());
        var trace = new Heatmap
        {
            // plotly.js 1.58's RdBu runs blue (low) to red (high): reversed, PEFT ahead (above 0) is blue.
            z = z, x = x, y = rows.ToArray(), colorscale = "RdBu", reversescale = true, zmin = -span, zmax = span, showscale = true,
            name = "best PEFT - full FT",
        };
        var layout = Layout(title ?? "Best PEFT - full fine-tuning (points of test top-1; blue: PEFT ahead)", "training images", "backbone");
        layout.annotations = (from r in rows from s in sizes let c = cell(r, s) where c is not null
                              select new Annotation
                              {
                                  x = Column(s), y = r, showarrow = false,
                                  text = c.Value.Label,
                                  font = new Font { color = Math.Abs(c.Value.Value) > span / 2 ? "white" : "black" }, // readable on the dark ends
                              }).ToArray();
        layout.margin = new Margin { l = 120 };
        return Chart.Plot(trace, layout);
    }

    /// <summary>Test top-1 against training images (log x axis): one colour per backbone, one dash style and symbol per method.</summary>
    public static PlotlyChart AccuracyVsSize(IReadOnlyList<(string Backbone, string Method, int Size, double Top1)> points, string? title = null)
    {
        string[] colours = { "gray", "royalblue", "crimson", "seagreen", "darkorange", "purple" };
        string[] dashes = { "solid", "dash", "dot", "dashdot", "longdash", "longdashdot" };
        string[] symbols = { "circle", "square", "diamond", "triangle-up", "cross", "star" };
        var backbones = points.Select(p => p.Backbone).Distinct().ToList();
        var methods = points.Select(p => p.Method).Distinct().ToList();
        var traces = (from p in points
                      group p by (p.Backbone, p.Method) into g
                      let ps = g.OrderBy(p => p.Size).ToList()
                      let colour = colours[backbones.IndexOf(g.Key.Backbone) % colours.Length]
                      let m = methods.IndexOf(g.Key.Method)
                      select (Trace)new Scatter
                      {
                          x = ps.Select(p => p.Size).ToArray(), y = ps.Select(p => p.Top1).ToArray(), mode = "lines+markers",
                          name = $"{g.Key.Backbone}: {g.Key.Method}", line = new Line { color = colour, dash = dashes[m % dashes.Length] },
                          marker = new Marker { color = colour, size = 8, symbol = symbols[m % symbols.Length] },
                      }).ToList();
        var layout = Layout(title ?? "Test top-1 against training-set size, per backbone and method", "training images (log scale)", "test top-1 (%)");
        layout.xaxis.type = "log";
        return Chart.Plot(traces, layout);
    }

    /// <summary>The study's Figure 1c: target accuracy (x) against mean shift accuracy (y): zero-shot point, each
    /// method's fine-tuned point (star) and its WiSE curve.</summary>
    public static PlotlyChart Robustness(IReadOnlyList<WiseCurve> curves, string? title = null)
    {
        var traces = new List<Trace>();
        foreach (var c in curves)
            traces.Add(new Scatter
            {
                x = c.Points.Select(p => p.Target).ToArray(), y = c.Points.Select(p => p.MeanShift).ToArray(), mode = "lines+markers",
                name = $"{c.Method} WiSE (alpha 0..1)", text = c.Points.Select(p => $"alpha {p.Alpha:0.0#}").ToArray(),
            });
        traces.Add(new Scatter
        {
            x = curves.Select(c => c.Points[^1].Target).ToArray(), y = curves.Select(c => c.Points[^1].MeanShift).ToArray(), mode = "markers",
            name = "fine-tuned (alpha 1)", text = curves.Select(c => c.Method).ToArray(), marker = new Marker { symbol = "star", size = 14 },
        });
        if (curves.Count > 0 && curves[0].Points[0].Alpha == 0)
            traces.Add(new Scatter
            {
                x = new[] { curves[0].Points[0].Target }, y = new[] { curves[0].Points[0].MeanShift }, mode = "markers", name = "zero-shot (alpha 0)",
                marker = new Marker { symbol = "diamond", size = 14, color = "black" },
            });
        return Chart.Plot(traces, Layout(title ?? "Target vs. distribution-shift accuracy (Figure 1c)", "target test top-1 (%)", "mean top-1 over shift sets (%)"));
    }

    /// <summary>The paper's CLIP WiSE curves (Figure 1c's data): fs-imagenet (x) against the mean of the four shifts (y).</summary>
    public static PlotlyChart PaperRobustness() => Robustness(Wise.PaperCurves(), "The paper's CLIP ViT-B/16 WiSE curves (ImageNet 100-shot vs. mean of 4 shifts)");

    /// <summary>
    /// The chart's div and its Plotly.newPlot script, safe to put in a page whatever its strings hold. XPlot writes
    /// the data as JSON inside a script element and escapes nothing, so a method or task name from a store such as
    /// "&lt;/script&gt;&lt;script&gt;..." would end the script and run its own. Every '&lt;' in the script becomes
    /// \u003c, which a JSON string reads back as '&lt;' (XPlot's own code around the data has none). Every chart the
    /// workbench shows or saves goes through here.
    /// </summary>
    public static string InlineHtml(PlotlyChart chart)
    {
        // XPlot's inline JS is the whole script element; its body lies between the first opening tag and the last
        // closing one (a name's own "</script>" comes earlier, inside the data).
        var js = chart.GetInlineJS();
        var html = chart.GetInlineHtml();
        int open = js.IndexOf("<script", StringComparison.Ordinal), close = js.LastIndexOf("</script>", StringComparison.Ordinal);
        int body = open < 0 ? -1 : js.IndexOf('>', open) + 1;
        if (!html.Contains(js, StringComparison.Ordinal) || body <= 0 || close < body)
            throw new InvalidOperationException("XPlot's inline HTML is no longer a div and one script element: Charts.InlineHtml must learn the new layout.");
        return html.Replace(js, js[..body] + ScriptText(js[body..close]) + js[close..], StringComparison.Ordinal);
    }

    /// <summary>Script text that cannot end its script element or open a comment in it ('&lt;' as \u003c).</summary>
    public static string ScriptText(string js) => js.Replace("<", "\\u003c", StringComparison.Ordinal);

    /// <summary>A standalone page: plotly.js inline (offline; see <see cref="PlotlyJs"/>), then the chart.</summary>
    public static string StandaloneHtml(PlotlyChart chart, string? title = null)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>")
          .Append(System.Net.WebUtility.HtmlEncode(title ?? "PeftWorkbench chart")).Append("</title>\n")
          .Append(PlotlyJs.ScriptTags()).Append("</head><body>\n").Append(InlineHtml(chart)).Append("\n</body></html>\n");
        return sb.ToString();
    }

    /// <summary>Writes <see cref="StandaloneHtml"/> to <paramref name="path"/> (atomically) and returns the path.</summary>
    public static string SaveHtml(this PlotlyChart chart, string path, string? title = null)
    {
        var full = Path.GetFullPath(path);
        Checkpoints.AtomicFile.WriteText(full, StandaloneHtml(chart, title));
        return full;
    }
}
