using System.Globalization;
using Microsoft.Data.Analysis;
using PeftWorkbench.Analysis;
using PeftWorkbench.Tuning;
using XPlot.Plotly;

namespace PeftWorkbench.Findings;

/// <summary>One run of the regime: a method on a task at one training-set size on one backbone, its final test top-1.</summary>
public sealed record RegimePoint(string Backbone, int Size, string Task, string Method, double Top1);

/// <summary>One cell of the heat map: on a backbone at a size, the best PEFT method by mean top-1 over the tasks, its mean,
/// full fine-tuning's mean, and the gap (NaN where either is missing).</summary>
public sealed record RegimeGap(string Backbone, int Size, string BestPeft, double BestPeftTop1, double FullTop1)
{
    public double Gap => BestPeftTop1 - FullTop1;
}

/// <summary>
/// Notebook 07, "When does PEFT beat full fine-tuning?": the study's finding (PEFT about 15 points ahead of full
/// fine-tuning on VTAB-1K) holds in one regime, a strongly pre-trained backbone and little target data. This runs the
/// protocol at several training-set sizes on random init and every shipped backbone (<see cref="RegimePlan"/>), tables
/// accuracy(backbone, size, method), maps best PEFT minus full FT over (backbone x size), says per backbone where the sign
/// flips, and sets that beside the related work's claim and the study's own VTAB-1K and many-shot points (read from the
/// paper data, never typed in). Claims carry verdicts qualified by the runs' convergence diagnostics.
/// </summary>
public sealed class Regime
{
    public const string Full = "full", Linear = "linear";

    /// <summary>The related study's statement of the regime (Üstün and Cooper Stickland, "When does Parameter-Efficient
    /// Transfer Learning Work for Machine Translation?", 2022), as issue 25 quotes it.</summary>
    public const string RelatedWorkClaim = "\"using PEFTs with a larger pre-trained model outperforms full fine-tuning with a smaller model, " +
        "and for smaller training data sizes, PEFTs outperform full fine-tuning for the same pre-trained model.\" " +
        "(When does Parameter-Efficient Transfer Learning Work for Machine Translation?, 2022)";

    public RegimePlan? Plan { get; }
    public IReadOnlyList<RegimePoint> Points { get; }
    public IReadOnlyList<RegimeGap> Gaps { get; }
    public Convergence? Diagnostics { get; }
    public IReadOnlyList<Claim> Claims { get; }
    /// <summary>How many trials <see cref="Run"/> trained and how many it read from the store (null from <see cref="From"/>).</summary>
    public RunTally? Tally { get; private set; }

    Regime(RegimePlan? plan, IReadOnlyList<RegimePoint> points, Convergence? diagnostics)
    {
        Plan = plan; Points = points; Diagnostics = diagnostics;
        Gaps = GapsOf(points);
        Claims = ClaimsOf(Gaps, diagnostics?.Reading() ?? BudgetReading.Unchecked);
    }

    /// <summary>The finding over points alone (tests, numbers from elsewhere); <paramref name="diagnostics"/> null: no budget check.</summary>
    public static Regime From(IReadOnlyList<RegimePoint> points, Convergence? diagnostics = null, RegimePlan? plan = null) => new(plan, points, diagnostics);

    /// <summary>
    /// Runs the plan: per backbone and size one <see cref="Study.RunAll"/> over tasks x methods (worker processes, finished
    /// trials read from the backbone's store: <see cref="RegimePlan.StoreFor"/>), then reads the finding. The progress line
    /// names the backbone and size in front of RunAll's own; an interrupt ends it with "stopped (interrupted)".
    /// </summary>
    public static Regime Run(RegimePlan plan, string profile, string? store = null, long? seed = null, int? workers = null,
        string suite = "mini", string preset = "mini", Action<string>? progress = null, CancellationToken cancel = default)
    {
        var since = DateTime.UtcNow;
        var points = new List<RegimePoint>();
        var trials = new List<RunTrials>();
        var finished = new List<StudyRun>();
        using var line = new Display.StoppableProgress(progress);
        int step = 0, steps = plan.Backbones.Count * plan.Sizes.Count;
        try
        {
            foreach (var backbone in plan.Backbones)
                foreach (var size in plan.Sizes)
                {
                    cancel.ThrowIfCancellationRequested();
                    var prefix = $"({++step}/{steps}) {backbone.Name}, {size} images: ";
                    line.Report(prefix + "starting");
                    // RunAll's line shows on this one; when it ends it on an interrupt, Stopped below says nothing more.
                    var runs = Study.RunAll(plan.Tasks, plan.Methods, profile, store: RegimePlan.StoreFor(store, backbone, suite), suite: suite,
                        checkpoint: backbone.Checkpoint, preset: preset, seed: seed, workers: workers, progress: line.Nested(prefix), cancel: cancel, trainImages: size);
                    foreach (var r in runs)
                    {
                        points.Add(new RegimePoint(backbone.Name, size, r.Task, r.Method, r.Final.Top1Last ?? double.NaN));
                        trials.Add(new RunTrials(Label(r.Task, backbone.Name, size), r.Method, r.Tuning, r.Selected, r.Final));
                        r.Dispose(); // the records stay; the test logits are not needed here
                        finished.Add(r);
                    }
                }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            line.Stopped("interrupted");
            throw;
        }
        var classes = plan.Tasks.ToDictionary(t => t, t => Data.Suite.Mini.Tasks.FirstOrDefault(x => x.Name == t)?.NumClasses);
        var diagnostics = Convergence.Of(trials, label => classes.GetValueOrDefault(label.Split(' ')[0]));
        var finding = new Regime(plan, points, diagnostics) { Tally = RunTally.Of(finished, since) };
        line.Report($"{finished.Count} runs: {finding.Tally}");
        return finding;
    }

    /// <summary>A run's row in the diagnostics: "mnist mini n=200".</summary>
    static string Label(string task, string backbone, int size) => $"{task} {backbone} n={size}";

    // ---------------------------------------------------------------- the maths

    /// <summary>Per backbone and size: each method's mean top-1 over the tasks, the best PEFT method (neither full
    /// fine-tuning nor the linear probe) by that mean, and its gap to full fine-tuning's mean (the study's "+15.7" is the
    /// same statistic over VTAB-1K's 19 tasks).</summary>
    public static IReadOnlyList<RegimeGap> GapsOf(IReadOnlyList<RegimePoint> points) =>
        points.GroupBy(p => (p.Backbone, p.Size)).Select(g =>
        {
            var means = g.GroupBy(p => p.Method).ToDictionary(m => m.Key, m => m.Average(p => p.Top1));
            var peft = means.Where(kv => kv.Key is not (Full or Linear)).OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).ToList();
            return new RegimeGap(g.Key.Backbone, g.Key.Size, peft.Count > 0 ? peft[0].Key : "", peft.Count > 0 ? peft[0].Value : double.NaN,
                means.GetValueOrDefault(Full, double.NaN));
        }).ToList();

    /// <summary>The backbones in the order the points name them first, and the sizes ascending.</summary>
    public IReadOnlyList<string> Backbones => Points.Select(p => p.Backbone).Distinct().ToList();
    public IReadOnlyList<int> Sizes => Points.Select(p => p.Size).Distinct().Order().ToList();

    /// <summary>The sizes at which best PEFT beats full fine-tuning on <paramref name="backbone"/> (gap above 0).</summary>
    public static IReadOnlyList<int> SizesWherePeftWins(IReadOnlyList<RegimeGap> gaps, string backbone) =>
        gaps.Where(g => g.Backbone == backbone && g.Gap > 0).Select(g => g.Size).Order().ToList();

    /// <summary>Per backbone, where the sign flips: the largest size at which best PEFT beats full FT, or "nowhere in 50-800".</summary>
    public static IReadOnlyList<string> FlipSentences(IReadOnlyList<RegimeGap> gaps)
    {
        var sentences = new List<string>();
        foreach (var b in gaps.Select(g => g.Backbone).Distinct())
        {
            var mine = gaps.Where(g => g.Backbone == b && !double.IsNaN(g.Gap)).OrderBy(g => g.Size).ToList();
            if (mine.Count == 0) { sentences.Add($"{b}: no size has both full fine-tuning and a PEFT method."); continue; }
            var wins = mine.Where(g => g.Gap > 0).ToList();
            string range = $"{mine[0].Size}-{mine[^1].Size}";
            if (wins.Count == 0) { sentences.Add($"{b}: best PEFT beats full fine-tuning nowhere in {range} training images (at best {F(mine.Max(g => g.Gap))} points)."); continue; }
            var largest = wins[^1];
            var above = mine.Where(g => g.Size > largest.Size).ToList();
            var below = mine.Where(g => g.Size < largest.Size && g.Gap <= 0).ToList();
            var s = $"{b}: the largest size at which best PEFT beats full fine-tuning is {largest.Size} images ({largest.BestPeft} {F(largest.Gap, true)} points)";
            s += above.Count > 0 ? $"; above it full fine-tuning is level or ahead ({string.Join(", ", above.Select(g => $"{g.Size}: {F(g.Gap, true)}"))})"
                : largest.Size == mine[^1].Size && wins.Count == mine.Count ? $"; PEFT is ahead at every size run ({range})" : "";
            if (below.Count > 0) s += $"; it does not win at {string.Join(", ", below.Select(g => g.Size))} (the sign changes more than once: read it as noise)";
            sentences.Add(s + ".");
        }
        return sentences;
    }

    // ---------------------------------------------------------------- the study's points (paper data)

    /// <summary>The study's VTAB-1K point: best PEFT method's mean over the 19 tasks minus full fine-tuning's (last epoch),
    /// and which method; from the paper data (Paper.Vtab1kScores).</summary>
    public static (string Method, double Gap) StudyVtab1kGap()
    {
        var means = Paper.Vtab1kScores("last").GroupBy(s => s.Method).ToDictionary(g => g.Key, g => g.Average(s => s.Top1));
        var best = means.Where(kv => kv.Key is not (Full or Linear)).MaxBy(kv => kv.Value);
        return (best.Key, best.Value - means[Full]);
    }

    /// <summary>The study's many-shot points: per dataset and setting of Paper.ManyShot() that has a full fine-tuning run,
    /// the best PEFT run (any width) minus full fine-tuning (last epoch).</summary>
    public static IReadOnlyList<(string Experiment, string Dataset, string Setting, string BestPeft, double Gap)> StudyManyShotGaps()
    {
        var df = Paper.ManyShot();
        // The CLIP runs (100-shot ImageNet) are another backbone: the regime compares sizes on one backbone.
        var rows = Enumerable.Range(0, (int)df.Rows.Count).Where(i => df["top1_last"][i] is double && !((string)df["experiment"][i]).StartsWith("clip", StringComparison.Ordinal))
            .Select(i => (Experiment: (string)df["experiment"][i], Dataset: (string)df["dataset"][i], Setting: (string)df["setting"][i],
                Method: (string)df["method"][i], Top1: (double)df["top1_last"][i])).ToList();
        return rows.GroupBy(r => (r.Experiment, r.Dataset, r.Setting)).Where(g => g.Any(r => r.Method == Full) && g.Any(r => r.Method is not (Full or Linear)))
            .Select(g =>
            {
                var best = g.Where(r => r.Method is not (Full or Linear)).MaxBy(r => r.Top1);
                return (g.Key.Experiment, g.Key.Dataset, g.Key.Setting, best.Method, best.Top1 - g.First(r => r.Method == Full).Top1);
            }).ToList();
    }

    /// <summary>The study's mean best-PEFT-minus-full gap over its full-training-set many-shot datasets (<see cref="ManyShot.PaperDatasets"/>).</summary>
    public static double StudyFullSetGap() => StudyManyShotGaps()
        .Where(g => ManyShot.PaperDatasets.Values.Any(d => d.Dataset == g.Dataset && d.Setting == g.Setting)).Average(g => g.Gap);

    /// <summary>source, data, training images, best PEFT, best PEFT - full FT: the study's points (VTAB-1K, many-shot) in one table.</summary>
    public static DataFrame StudyPoints()
    {
        var (m, v) = StudyVtab1kGap();
        var rows = new List<(string Source, string Data, string Images, string Best, double Gap)> { ("study, VTAB-1K", "19 tasks, mean", "800 + 200 per task", m, v) };
        rows.AddRange(StudyManyShotGaps().Select(g => ("study, " + g.Experiment, g.Dataset, $"setting '{g.Setting}'", g.BestPeft, g.Gap)));
        return new DataFrame(new StringDataFrameColumn("source", rows.Select(r => r.Source)), new StringDataFrameColumn("data", rows.Select(r => r.Data)),
            new StringDataFrameColumn("training images", rows.Select(r => r.Images)), new StringDataFrameColumn("best PEFT", rows.Select(r => r.Best)),
            new PrimitiveDataFrameColumn<double>("best PEFT - full FT", rows.Select(r => Verdicts.Round(r.Gap))));
    }

    // ---------------------------------------------------------------- claims

    /// <summary>
    /// Per pre-trained backbone: (1) at the smallest size best PEFT is ahead of full FT, as in the study's VTAB-1K;
    /// (2) PEFT's lead shrinks from the smallest to the largest size, as the study's shrinks from VTAB-1K to its full
    /// training sets (the related work: smaller data favours PEFT). Per pre-trained backbone beside random init: (3) its
    /// gap, mean over sizes, exceeds random init's (the related work: pre-training favours PEFT; the study ran one backbone,
    /// so it has no number here).
    /// </summary>
    public static IReadOnlyList<Claim> ClaimsOf(IReadOnlyList<RegimeGap> gaps, BudgetReading budget)
    {
        var claims = new List<Claim>();
        var valid = gaps.Where(g => !double.IsNaN(g.Gap)).ToList();
        if (valid.Count == 0) return claims;
        var (vtabMethod, vtab) = StudyVtab1kGap();
        double manyShot = StudyFullSetGap();
        double? Mean(string b) => valid.Where(g => g.Backbone == b).Select(g => (double?)g.Gap).DefaultIfEmpty(null).Average();
        foreach (var b in valid.Select(g => g.Backbone).Distinct().Where(b => b != RegimeBackbone.RandomInit))
        {
            var mine = valid.Where(g => g.Backbone == b).OrderBy(g => g.Size).ToList();
            var small = mine[0];
            claims.Add(Verdicts.Make($"{b}: best PEFT - full FT at {small.Size} images", small.Gap, vtab, small.Gap > 0,
                "PEFT ahead (above 0), as the study's VTAB-1K", budget, note: $"the study's: {vtabMethod} against full FT, 19 VTAB-1K tasks, 800 + 200 images each"));
            if (mine.Count >= 2)
            {
                var large = mine[^1];
                double shrink = small.Gap - large.Gap, paper = vtab - manyShot;
                claims.Add(Verdicts.Make($"{b}: PEFT's lead at {small.Size} minus at {large.Size} images", shrink, paper, shrink > 0 == paper > 0,
                    "the same sign as the study's (VTAB-1K's gap minus its full-training-set many-shot gap)", budget,
                    note: $"the study's many-shot gap: {F(manyShot, true)} (mean over CIFAR-100, RESISC45, Clevr-distance)"));
            }
            if (Mean(RegimeBackbone.RandomInit) is double random && Mean(b) is double pre)
                claims.Add(Verdicts.Make($"{b} minus random init: best PEFT - full FT, mean over sizes", pre - random, null, pre - random > 0,
                    "above 0: pre-training favours PEFT more than full FT (the related work's claim; the study ran one backbone)", budget));
        }
        return claims;
    }

    // ---------------------------------------------------------------- tables, charts, lines

    /// <summary>backbone, size, then one column per method (mean test top-1 over the tasks), then best PEFT - full FT.</summary>
    public DataFrame Table()
    {
        var methods = Points.Select(p => p.Method).Distinct().ToList();
        var rows = Gaps.OrderBy(g => Backbones.ToList().IndexOf(g.Backbone)).ThenBy(g => g.Size).ToList();
        double? Of(RegimeGap g, string m) => Points.Where(p => p.Backbone == g.Backbone && p.Size == g.Size && p.Method == m)
            .Select(p => (double?)p.Top1).DefaultIfEmpty(null).Average();
        var cols = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("backbone", rows.Select(g => g.Backbone)), new PrimitiveDataFrameColumn<int>("training images", rows.Select(g => g.Size)),
        };
        cols.AddRange(methods.Select(m => new PrimitiveDataFrameColumn<double>(m, rows.Select(g => Verdicts.Round(Of(g, m))))));
        cols.Add(new StringDataFrameColumn("best PEFT", rows.Select(g => g.BestPeft)));
        cols.Add(new PrimitiveDataFrameColumn<double>("best PEFT - full FT", rows.Select(g => Verdicts.Round(g.Gap))));
        return new DataFrame(cols);
    }

    /// <summary>The heat map's numbers: one row per backbone, one column per size, best PEFT - full FT in points.</summary>
    public DataFrame GapTable()
    {
        var cols = new List<DataFrameColumn> { new StringDataFrameColumn("backbone", Backbones) };
        cols.AddRange(Sizes.Select(s => new PrimitiveDataFrameColumn<double>($"{s} images",
            Backbones.Select(b => Verdicts.Round(Gaps.FirstOrDefault(g => g.Backbone == b && g.Size == s)?.Gap)))));
        return new DataFrame(cols);
    }

    /// <summary><see cref="GapTable"/> as Markdown (the issue's note reads it).</summary>
    public string GapMarkdown()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append("| backbone | ").Append(string.Join(" | ", Sizes.Select(s => $"{s}"))).AppendLine(" |");
        sb.Append("|---|").Append(string.Concat(Sizes.Select(_ => "---|"))).AppendLine();
        foreach (var b in Backbones)
            sb.Append("| ").Append(b).Append(" | ").Append(string.Join(" | ", Sizes.Select(s => Gaps.FirstOrDefault(g => g.Backbone == b && g.Size == s) is { } g && !double.IsNaN(g.Gap)
                ? F(g.Gap, true) : "n/a"))).AppendLine(" |");
        return sb.ToString();
    }

    /// <summary>Best PEFT - full FT over (backbone x training images): a diverging scale centred on 0 (blue: PEFT ahead,
    /// red: full FT ahead), each cell labelled with its gap and best PEFT method.</summary>
    public PlotlyChart HeatMap() => Plots.Charts.RegimeHeatmap(Backbones, Sizes,
        (b, s) => Gaps.FirstOrDefault(g => g.Backbone == b && g.Size == s) is { } g && !double.IsNaN(g.Gap) ? (g.Gap, F(g.Gap, true) + "<br>" + g.BestPeft) : null);

    /// <summary>Test top-1 against training images (log axis), one colour per backbone, one line per method.</summary>
    public PlotlyChart AccuracyChart() => Plots.Charts.AccuracyVsSize(
        Points.GroupBy(p => (p.Backbone, p.Method, p.Size)).Select(g => (g.Key.Backbone, g.Key.Method, g.Key.Size, g.Average(p => p.Top1))).ToList());

    public DataFrame ClaimsTable() => Verdicts.Table(Claims);

    public string VerdictLine() => Verdicts.VerdictLine(Claims);

    /// <summary>The flip sentences, the related work's claim and the study's points, in words.</summary>
    public string Sentences()
    {
        var (m, v) = StudyVtab1kGap();
        return string.Join("\n", FlipSentences(Gaps).Select(s => "- " + s)
            .Append($"- The related work: {RelatedWorkClaim}")
            .Append($"- The study: on VTAB-1K (800 + 200 images per task) its best PEFT method ({m}) is {F(v, true)} points from full fine-tuning; " +
                $"with full training sets (CIFAR-100, RESISC45, Clevr-distance) its best PEFT run is {F(StudyFullSetGap(), true)} on average."));
    }

    /// <summary>The verdicts in words, one line per claim, then the tally.</summary>
    public string Summary() => Verdicts.InWords(Claims) + "\n" + Verdicts.Tally(Claims) + ".";

    /// <summary>The index page's line.</summary>
    public string FindingLine() =>
        $"Regime (when PEFT beats full FT): {Verdicts.Tally(Claims)} ({Backbones.Count} backbones, sizes {string.Join("/", Sizes)}). " +
        string.Join(" ", FlipSentences(Gaps));

    /// <summary>One decimal, rounded as the tables round (<see cref="Verdicts.Round"/>), so a sentence and a table cell agree.</summary>
    internal static string F(double v, bool signed = false)
    {
        double r = Verdicts.Round(v) ?? v;
        return (signed && r > 0 ? "+" : "") + r.ToString("0.0", CultureInfo.InvariantCulture);
    }
}
