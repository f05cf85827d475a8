using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using XPlot.Plotly;

namespace PeftWorkbench.Plots;

/// <summary>
/// Live training curves, one line per trial: the training loss against epochs, redrawn in place while the runs go.
/// Each finished epoch is one point (its mean loss); the epoch under way shows its running mean as the line's tip.
/// A trial's legend entry ends with its score once it is done (val top-1 for a tune trial, test for the final).
/// <code>
/// var curves = new TrainingCurves("LoRA on dsprites-loc: training loss per grid point");
/// var live = display(curves.Chart());   // a chart first: .NET Interactive keeps the first value's MIME types for Update
/// curves.Redraw = live.Update;
/// Study.Run(..., progressFor: curves.For, cancel: Cancellation);
/// </code>
/// Redraws are throttled to one per <c>minInterval</c> (1 s), plus one whenever a trial ends, so a cell never spends
/// its time drawing. Works on both kernels: each display handle's Update takes the chart and formats it again.
/// </summary>
public sealed class TrainingCurves(string title, TimeSpan? minInterval = null)
{
    sealed class Series(string name)
    {
        public string Name { get; } = name;
        public List<(double Epoch, double Loss)> Points { get; } = new();
        public bool TipIsProvisional;
        public string? Outcome;
    }

    readonly object gate = new();
    readonly List<Series> series = new();
    readonly TimeSpan interval = minInterval ?? TimeSpan.FromSeconds(1);
    DateTime lastDrawn = DateTime.MinValue;

    /// <summary>Called with a fresh chart on each redraw (a display handle's Update); null: nothing is drawn.</summary>
    public Action<object>? Redraw { get; set; }

    /// <summary>How many redraws went to <see cref="Redraw"/>.</summary>
    public int Redraws { get; private set; }

    /// <summary>A progress sink for one trial, named after its hyperparameters (fits Study.Run's progressFor).</summary>
    public IProgress<TrainProgress> For(TrialConfig config) => Track(Label(config));

    /// <summary>A progress sink that draws one line named <paramref name="name"/>.</summary>
    public IProgress<TrainProgress> Track(string name)
    {
        var s = new Series(name);
        lock (gate) series.Add(s);
        return new Progress(this, s);
    }

    /// <summary>"lora_bottleneck=8 lr=0.01 wd=0.0001" ("final: " first for the retrained run).</summary>
    public static string Label(TrialConfig c) => (c.Phase == "final" ? "final: " : "") +
        string.Join(" ", c.Hp.Select(kv => $"{kv.Key}={kv.Value}").Append(FormattableString.Invariant($"lr={c.Lr:G4}")).Append(FormattableString.Invariant($"wd={c.WeightDecay:G4}")));

    /// <summary>The lines drawn so far: name (with its outcome once known) and points (epoch, loss).</summary>
    public IReadOnlyList<(string Name, IReadOnlyList<(double Epoch, double Loss)> Points)> Lines()
    {
        lock (gate) return series.Select(s => (s.Outcome is null ? s.Name : $"{s.Name}: {s.Outcome}", (IReadOnlyList<(double, double)>)s.Points.ToList())).ToList();
    }

    public PlotlyChart Chart()
    {
        var traces = Lines().Select(l =>
        {
            var trace = new Scatter { x = l.Points.Select(p => p.Epoch).ToArray(), y = l.Points.Select(p => p.Loss).ToArray(), mode = "lines+markers", name = l.Name };
            // Set only where wanted: XPlot writes an unset-but-assigned null as "line": null, which stops plotly.js drawing.
            if (l.Name.StartsWith("final: ", StringComparison.Ordinal)) trace.line = new Line { dash = "dash", width = 3 };
            return (Trace)trace;
        }).ToList();
        var layout = new Layout.Layout
        {
            title = title, xaxis = new Xaxis { title = "epoch" }, yaxis = new Yaxis { title = "training loss (mean over the epoch)" }, showlegend = true,
        };
        return XPlot.Plotly.Chart.Plot(traces, layout);
    }

    void Report(Series s, TrainProgress p)
    {
        bool ended = p.Phase is "done" or "diverged" or "cancelled";
        lock (gate)
        {
            if (p.Phase == "train" && double.IsFinite(p.Loss) && p.StepsPerEpoch > 0)
            {
                var point = (p.Epoch + (double)p.Step / p.StepsPerEpoch, p.Loss);
                if (s.TipIsProvisional) s.Points[^1] = point; else s.Points.Add(point);
                s.TipIsProvisional = p.Step < p.StepsPerEpoch;
            }
            if (ended)
                s.Outcome = p.Phase != "done" ? p.Phase
                    : p.EvalTop1 is { } top1 ? FormattableString.Invariant($"{(s.Name.StartsWith("final: ", StringComparison.Ordinal) ? "test" : "val")} {top1:F1} %") : "done";
            var now = DateTime.UtcNow;
            if (!ended && now - lastDrawn < interval) return;
            lastDrawn = now;
        }
        if (Redraw is { } redraw) { redraw(Chart()); Redraws++; }
    }

    sealed class Progress(TrainingCurves owner, Series s) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress p) => owner.Report(s, p);
    }
}
