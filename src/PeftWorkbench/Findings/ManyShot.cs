using System.Text.RegularExpressions;
using Microsoft.Data.Analysis;
using PeftWorkbench.Analysis;
using PeftWorkbench.Tuning;
using XPlot.Plotly;

namespace PeftWorkbench.Findings;

/// <summary>One many-shot result: a method at one capacity (null: the method has no width) on one dataset, its test
/// top-1 (%) and its trainable parameters without the head (the study's count; 0 for the linear probe).</summary>
public sealed record CapacityPoint(string Dataset, string Method, int? Capacity, long TrainableParams, double Top1)
{
    public string Label => Capacity is int c ? $"{Method} {c}" : Method;
}

/// <summary>The study's many-shot dataset that stands in for one of our task groups (Paper.ManyShot's dataset and setting).</summary>
public sealed record PaperDataset(string Dataset, string Setting, string Name);

/// <summary>
/// Finding 3 (notebook 04): with full training sets, PEFT at enough width stays level with full fine-tuning, which is no
/// longer the weak baseline it is on VTAB-1K. Ours (<see cref="CapacitySweep"/> runs on the mini suite's many-shot sets)
/// beside the study's (<see cref="Analysis.Paper.ManyShot"/>: CIFAR-100, RESISC45, Clevr-distance, full training sets):
/// points, tables, charts, claims with verdicts qualified by the convergence diagnostics, and its one-line finding.
/// </summary>
public sealed class ManyShot
{
    /// <summary>The study's many-shot dataset of each group's kind: CIFAR-100 (natural), RESISC45 (specialized), Clevr-distance (structured).</summary>
    public static IReadOnlyDictionary<string, PaperDataset> PaperDatasets { get; } = new Dictionary<string, PaperDataset>
    {
        ["natural"] = new("cifar100", "full", "CIFAR-100"),
        ["specialized"] = new("resisc", "full", "RESISC45"),
        ["structured"] = new("clevr", "clevr", "Clevr-distance"),
    };

    /// <summary>The study's dataset for a mini task (by the task's group).</summary>
    public static PaperDataset PaperDatasetFor(string task) =>
        PaperDatasets.TryGetValue(Ranks.GroupOf(task), out var d) ? d
        : throw new ArgumentException($"Task '{task}' is in no group of the mini suite, so no study dataset stands in for it.", nameof(task));

    static readonly Regex WithCapacity = new(@"^(?<method>.+)_(?<capacity>\d+)$", RegexOptions.Compiled);

    /// <summary>The study's points on one of its many-shot datasets (a method_N run is the method at capacity N), named by <see cref="PaperDataset.Name"/>.</summary>
    public static IReadOnlyList<CapacityPoint> PaperPoints(PaperDataset d)
    {
        var df = Paper.ManyShot();
        var points = new List<CapacityPoint>();
        for (int i = 0; i < df.Rows.Count; i++)
        {
            if ((string)df["dataset"][i] != d.Dataset || (string)df["setting"][i] != d.Setting || df["top1_last"][i] is not double top1) continue;
            var method = (string)df["method"][i];
            var m = WithCapacity.Match(method);
            points.Add(new CapacityPoint(d.Name, m.Success ? m.Groups["method"].Value : method, m.Success ? int.Parse(m.Groups["capacity"].Value) : null,
                (long)df["trainable_params"][i], top1));
        }
        if (points.Count == 0) throw new ArgumentException($"The paper has no many-shot rows for dataset '{d.Dataset}', setting '{d.Setting}'.");
        return points;
    }

    /// <summary>Our points: each run's final test top-1 and trainable parameters, on the run's task.</summary>
    public static IReadOnlyList<CapacityPoint> PointsOf(IEnumerable<CapacityRun> runs) =>
        runs.Select(r => new CapacityPoint(r.Run.Task, r.Run.Method, r.Capacity, r.Run.Final.TrainableParams, r.Run.Final.Top1Last ?? double.NaN)).ToList();

    /// <summary>The paper's points on its three many-shot datasets for the methods given (every width it ran).</summary>
    public static IReadOnlyList<CapacityPoint> PaperPointsFor(IEnumerable<string> methods)
    {
        var ids = methods.Select(m => Peft.MethodRegistry.Get(m).Id).ToHashSet();
        return PaperDatasets.Values.SelectMany(PaperPoints).Where(p => ids.Contains(p.Method)).ToList();
    }

    /// <summary>The paper's points on its three many-shot datasets for the methods at the widths we ran (a width-less method: its one run).</summary>
    public static IReadOnlyList<CapacityPoint> PaperPointsLike(IReadOnlyList<CapacityPoint> ours) =>
        PaperDatasets.Values.SelectMany(PaperPoints).Where(p => ours.Any(o => o.Method == p.Method && o.Capacity == p.Capacity)).ToList();

    /// <summary>Each point's top-1 minus full fine-tuning's and minus the linear probe's on the same dataset (NaN where that run is missing).</summary>
    public static (double VsFull, double VsLinear) Gaps(CapacityPoint p, IEnumerable<CapacityPoint> all)
    {
        double Of(string method) => all.FirstOrDefault(q => q.Dataset == p.Dataset && q.Method == method)?.Top1 ?? double.NaN;
        return (p.Top1 - Of("full"), p.Top1 - Of("linear"));
    }

    /// <summary>One row per point: dataset, method, capacity, trainable_params, top1, vs_full, vs_linear (points).</summary>
    public static DataFrame Table(IReadOnlyList<CapacityPoint> points)
    {
        var gaps = points.Select(p => Gaps(p, points)).ToList();
        return new DataFrame(
            new StringDataFrameColumn("dataset", points.Select(p => p.Dataset)), new StringDataFrameColumn("method", points.Select(p => p.Method)),
            new PrimitiveDataFrameColumn<int>("capacity", points.Select(p => p.Capacity)),
            new PrimitiveDataFrameColumn<long>("trainable_params", points.Select(p => p.TrainableParams)),
            new PrimitiveDataFrameColumn<double>("top1", points.Select(p => Math.Round(p.Top1, 2))),
            new PrimitiveDataFrameColumn<double>("vs_full", gaps.Select(g => Math.Round(g.VsFull, 2))),
            new PrimitiveDataFrameColumn<double>("vs_linear", gaps.Select(g => Math.Round(g.VsLinear, 2))));
    }

    /// <summary>
    /// Ours beside the paper, one row per our point: task, the study's dataset of its kind, method, capacity, and for each
    /// side top-1 and the gap to full fine-tuning (the gaps compare; the absolute numbers do not: different data and model).
    /// </summary>
    public static DataFrame Beside(IReadOnlyList<CapacityPoint> ours)
    {
        var rows = ours.Select(o =>
        {
            var d = PaperDatasetFor(o.Dataset);
            var paper = PaperPoints(d);
            var match = paper.FirstOrDefault(p => p.Method == o.Method && p.Capacity == o.Capacity);
            return (Ours: o, Dataset: d.Name, Paper: match, OursGap: Gaps(o, ours).VsFull, PaperGap: match is null ? double.NaN : Gaps(match, paper).VsFull);
        }).ToList();
        static double? R(double v) => double.IsNaN(v) ? null : Math.Round(v, 2);
        return new DataFrame(
            new StringDataFrameColumn("task", rows.Select(r => r.Ours.Dataset)), new StringDataFrameColumn("paper_dataset", rows.Select(r => r.Dataset)),
            new StringDataFrameColumn("method", rows.Select(r => r.Ours.Method)), new PrimitiveDataFrameColumn<int>("capacity", rows.Select(r => r.Ours.Capacity)),
            new PrimitiveDataFrameColumn<double>("ours_top1", rows.Select(r => R(r.Ours.Top1))), new PrimitiveDataFrameColumn<double>("ours_vs_full", rows.Select(r => R(r.OursGap))),
            new PrimitiveDataFrameColumn<double>("paper_top1", rows.Select(r => r.Paper is null ? null : R(r.Paper.Top1))),
            new PrimitiveDataFrameColumn<double>("paper_vs_full", rows.Select(r => R(r.PaperGap))));
    }
    /// <summary>How close a PEFT method must come to full fine-tuning to count as "competitive": 1 point of top-1 (about one
    /// standard error on the mini suite's 2,000 test images at 80 %).</summary>
    public const double CompetitiveWithin = 1.0;

    /// <summary>
    /// Per dataset, the claim's numbers: full fine-tuning's top-1; the mean gap to it of the swept PEFT methods at their
    /// smallest and at their largest capacity (points); the best PEFT method's gap; the linear probe's gap. NaN where a
    /// run is missing (e.g. no full fine-tuning).
    /// </summary>
    public static IReadOnlyList<CapacitySummary> Summarize(IReadOnlyList<CapacityPoint> points) =>
        points.GroupBy(p => p.Dataset).Select(g =>
        {
            var all = g.ToList();
            double full = all.FirstOrDefault(p => p.Method == "full")?.Top1 ?? double.NaN;
            var swept = all.Where(p => p.Capacity is not null).GroupBy(p => p.Method).ToList();
            double Mean(Func<IGrouping<string, CapacityPoint>, CapacityPoint> pick) => swept.Count == 0 ? double.NaN : swept.Average(m => pick(m).Top1 - full);
            var peft = all.Where(p => p.Method is not ("full" or "linear")).ToList();
            return new CapacitySummary(g.Key, full,
                Mean(m => m.MinBy(p => p.Capacity)!), swept.Count == 0 ? null : swept.Min(m => m.Min(p => p.Capacity)),
                Mean(m => m.MaxBy(p => p.Capacity)!), swept.Count == 0 ? null : swept.Max(m => m.Max(p => p.Capacity)),
                peft.Count == 0 ? double.NaN : peft.Max(p => p.Top1) - full, all.FirstOrDefault(p => p.Method == "linear")?.Top1 - full ?? double.NaN);
        }).ToList();

    /// <summary><see cref="Summarize"/>'s rows of ours and of the paper as one table (source: ours or paper; points rounded to 0.01).</summary>
    public static DataFrame SummaryTable(IReadOnlyList<CapacitySummary> ours, IReadOnlyList<CapacitySummary> paper)
    {
        var rows = ours.Select(r => (Source: "ours", R: r)).Concat(paper.Select(r => (Source: "paper", R: r))).ToList();
        static double? R(double v) => double.IsNaN(v) ? null : Math.Round(v, 2);
        return new DataFrame(
            new StringDataFrameColumn("source", rows.Select(r => r.Source)), new StringDataFrameColumn("dataset", rows.Select(r => r.R.Dataset)),
            new PrimitiveDataFrameColumn<double>("full_top1", rows.Select(r => R(r.R.FullTop1))),
            new PrimitiveDataFrameColumn<double>("smallest_width_vs_full", rows.Select(r => R(r.R.SmallestVsFull))),
            new PrimitiveDataFrameColumn<double>("largest_width_vs_full", rows.Select(r => R(r.R.LargestVsFull))),
            new PrimitiveDataFrameColumn<double>("best_peft_vs_full", rows.Select(r => R(r.R.BestVsFull))),
            new PrimitiveDataFrameColumn<double>("linear_vs_full", rows.Select(r => R(r.R.LinearVsFull))));
    }

    // ---------------------------------------------------------------- the finding over a run

    public IReadOnlyList<CapacityRun> Runs { get; }
    public IReadOnlyList<CapacityPoint> Points { get; }
    /// <summary>Per task: full FT's top-1 and the gaps to it (<see cref="Summarize"/>).</summary>
    public IReadOnlyList<CapacitySummary> OurGaps { get; }
    /// <summary>The same on the study's datasets, at the widths we ran (<see cref="PaperPointsLike"/>).</summary>
    public IReadOnlyList<CapacitySummary> PaperGaps { get; }
    public Convergence? Diagnostics { get; }
    public IReadOnlyList<Claim> Claims { get; }
    /// <summary>How many trials <see cref="Run"/> trained and how many it read from the store (null from <see cref="From(IReadOnlyList{CapacityRun})"/>).</summary>
    public RunTally? Tally { get; private set; }

    ManyShot(IReadOnlyList<CapacityRun> runs, IReadOnlyList<CapacityPoint> points, Convergence? diagnostics)
    {
        Runs = runs; Points = points; Diagnostics = diagnostics;
        OurGaps = Summarize(points);
        PaperGaps = Summarize(PaperPointsLike(points));
        Claims = ClaimsOf(OurGaps, PaperGaps, diagnostics?.Reading() ?? BudgetReading.Unchecked);
    }

    /// <summary>Runs the many-shot protocol for every task x method (x width) under the profile (finished trials are read
    /// from the store) and reads the finding.</summary>
    public static ManyShot Run(IReadOnlyList<string> tasks, IReadOnlyList<string> methods, IReadOnlyList<int> widths, string profile,
        string? store = null, long? seed = null, Action<string>? progress = null, CancellationToken cancel = default, string? backbone = null)
    {
        var since = DateTime.UtcNow;
        var finding = From(CapacitySweep.Run(tasks, methods, widths, profile, store: store, seed: seed, progress: progress, cancel: cancel,
            checkpoint: Study.CheckpointOf(backbone)));
        finding.Tally = RunTally.Of(finding.Runs.Select(r => r.Run), since);
        return finding;
    }

    /// <summary>The finding over finished runs, with their diagnostics (a tune trial is scored on the held-out share).</summary>
    public static ManyShot From(IReadOnlyList<CapacityRun> runs)
    {
        int ValSize(StudyRun r)
        {
            int images = r.Options.ManyShotTrainImages ?? Data.Suite.Mini.Tasks.FirstOrDefault(t => t.Name == r.Task)?.ManyShotTrain ?? 0;
            return Math.Max(1, (int)(images * r.Options.ValidationShare(images)));
        }
        var diagnostics = runs.Count == 0 ? null : Convergence.Of(runs.Select(r => r.Run), valSize: runs.Min(r => ValSize(r.Run)));
        return new ManyShot(runs, PointsOf(runs), diagnostics);
    }

    /// <summary>The finding over points alone (tests, or numbers from elsewhere); <paramref name="diagnostics"/> null: no budget check.</summary>
    public static ManyShot From(IReadOnlyList<CapacityPoint> points, Convergence? diagnostics = null) =>
        new(Array.Empty<CapacityRun>(), points, diagnostics);

    /// <summary>How far a PEFT gain from its narrowest to its widest width must go to count as "width helps": more than
    /// <see cref="CompetitiveWithin"/> points.</summary>
    public static bool WidthHelps(double gain) => gain > CompetitiveWithin;

    /// <summary>Within <see cref="CompetitiveWithin"/> of full fine-tuning, or above it.</summary>
    public static bool Competitive(double gap) => gap >= -CompetitiveWithin;

    /// <summary>
    /// The claims of finding 3, per task against the study's dataset of its kind (CIFAR-100, RESISC45, Clevr-distance)
    /// at the widths we ran: PEFT at its widest width and its best run against full FT (competitive = within
    /// <see cref="CompetitiveWithin"/> point or above, in both or in neither), what widening does (helps by more than
    /// that, in both or in neither), and the linear probe behind full FT by more than that (in both or in neither).
    /// A task without full fine-tuning, or whose kind the study did not run, gives no claim.
    /// </summary>
    public static IReadOnlyList<Claim> ClaimsOf(IReadOnlyList<CapacitySummary> ours, IReadOnlyList<CapacitySummary> paper, BudgetReading budget)
    {
        var claims = new List<Claim>();
        foreach (var o in ours)
        {
            var p = PaperDatasets.TryGetValue(Ranks.GroupOf(o.Dataset), out var d) ? paper.FirstOrDefault(x => x.Dataset == d.Name) : null;
            if (p is null || double.IsNaN(o.FullTop1)) continue;
            string on = $"{o.Dataset} vs {p.Dataset}";
            if (!double.IsNaN(o.LargestVsFull) && !double.IsNaN(p.LargestVsFull))
                claims.Add(Verdicts.Make($"{on}: PEFT at width {o.LargestCapacity} - full FT", o.LargestVsFull, p.LargestVsFull,
                    Competitive(o.LargestVsFull) == Competitive(p.LargestVsFull), $"competitive (within {CompetitiveWithin:0} point of full FT, or above) in both or in neither", budget,
                    note: "mean over the swept methods"));
            if (!double.IsNaN(o.BestVsFull) && !double.IsNaN(p.BestVsFull))
                claims.Add(Verdicts.Make($"{on}: best PEFT run - full FT", o.BestVsFull, p.BestVsFull,
                    Competitive(o.BestVsFull) == Competitive(p.BestVsFull), $"competitive (within {CompetitiveWithin:0} point, or above) in both or in neither", budget));
            if (o.SmallestCapacity != o.LargestCapacity && !double.IsNaN(o.LargestVsFull - o.SmallestVsFull) && !double.IsNaN(p.LargestVsFull - p.SmallestVsFull))
            {
                double og = o.LargestVsFull - o.SmallestVsFull, pg = p.LargestVsFull - p.SmallestVsFull;
                claims.Add(Verdicts.Make($"{on}: PEFT at width {o.LargestCapacity} - at width {o.SmallestCapacity}", og, pg, WidthHelps(og) == WidthHelps(pg),
                    $"width helps (by more than {CompetitiveWithin:0} point) in both or in neither", budget));
            }
            if (!double.IsNaN(o.LinearVsFull) && !double.IsNaN(p.LinearVsFull))
                claims.Add(Verdicts.Make($"{on}: linear probe - full FT", o.LinearVsFull, p.LinearVsFull,
                    Competitive(o.LinearVsFull) == Competitive(p.LinearVsFull), $"behind full FT by more than {CompetitiveWithin:0} point in both or in neither", budget));
        }
        return claims;
    }

    // ---------------------------------------------------------------- tables, charts, lines

    /// <summary>Our points: task, method, width, trainable parameters, top-1 and the gaps to full FT and the linear probe.</summary>
    public DataFrame PointsTable() => Table(Points);

    /// <summary>Each of our points beside the study's same method and width on its dataset of the same kind.</summary>
    public DataFrame BesidePaper() => Beside(Points);

    /// <summary>Per task, ours then the study's: full FT and the gaps to it.</summary>
    public DataFrame GapsTable() => SummaryTable(OurGaps, PaperGaps);

    public DataFrame ClaimsTable() => Verdicts.Table(Claims);

    public PlotlyChart Chart() => Plots.Charts.AccuracyVsParams(Points, "Ours (mini suite, many-shot): test top-1 against trainable parameters");

    /// <summary>The study's points for our methods, every width it ran, on its three datasets.</summary>
    public PlotlyChart PaperChart() => Plots.Charts.AccuracyVsParams(PaperPointsFor(Points.Select(p => p.Method).Distinct()),
        "The paper (ViT-B/16, full training sets): test top-1 against trainable parameters");

    /// <summary>The verdicts in words, one line per claim, then the tally.</summary>
    public string Summary() => Verdicts.InWords(Claims) + "\n" + Verdicts.Tally(Claims) + ".";

    public string VerdictLine() => Verdicts.VerdictLine(Claims);

    /// <summary>The index page's line for finding 3: the tally, then per task the gaps to full FT, ours and the study's.</summary>
    public string FindingLine()
    {
        static string Side(CapacitySummary s) =>
            $"{s.Dataset}: PEFT {s.LargestVsFull:+0.0;-0.0} at width {s.LargestCapacity}, {s.SmallestVsFull:+0.0;-0.0} at width {s.SmallestCapacity}, linear {s.LinearVsFull:+0.0;-0.0} points vs full FT ({s.FullTop1:F1} %)";
        // The study's side: only its datasets that stand for a task we ran (the table shows all three).
        var kinds = OurGaps.Select(o => PaperDatasets.TryGetValue(Ranks.GroupOf(o.Dataset), out var d) ? d.Name : null).ToHashSet();
        return $"Finding 3 (many-shot): {Verdicts.Tally(Claims)}. Mini suite: " + string.Join("; ", OurGaps.Select(Side)) +
            "; paper: " + string.Join("; ", PaperGaps.Where(p => kinds.Contains(p.Dataset)).Select(Side)) + ".";
    }

}

/// <summary>A dataset's many-shot claim in numbers (see <see cref="ManyShot.Summarize"/>): gaps in points of top-1 to full fine-tuning.</summary>
public sealed record CapacitySummary(string Dataset, double FullTop1, double SmallestVsFull, int? SmallestCapacity, double LargestVsFull, int? LargestCapacity,
    double BestVsFull, double LinearVsFull);
