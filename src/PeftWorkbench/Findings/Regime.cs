using PeftWorkbench.Analysis;
using PeftWorkbench.Tuning;

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
public sealed partial class Regime
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
        var steps = plan.Backbones.SelectMany(b => plan.Sizes.Select(n => (Backbone: b, Size: n))).ToList();
        // Each (Study.RunAll's loop) says an interrupt between steps; one inside a step's RunAll is said by RunAll's line,
        // shown on this one, which ends it (Nested): Each's Stopped then says nothing more. The lines are "(k/n) ...".
        line.Each(steps, s => $"{s.Backbone.Name}, {s.Size} images", (s, step) =>
        {
            var prefix = $"({step.Number}/{step.Count}) {step.Label}: ";
            line.Report(prefix + "starting");
            var runs = Study.RunAll(plan.Tasks, plan.Methods, profile, store: RegimePlan.StoreFor(store, s.Backbone, suite), suite: suite,
                checkpoint: s.Backbone.Checkpoint, preset: preset, seed: seed, workers: workers, progress: line.Nested(prefix), cancel: cancel, trainImages: s.Size);
            foreach (var r in runs)
            {
                points.Add(new RegimePoint(s.Backbone.Name, s.Size, r.Task, r.Method, r.Final.Top1Last ?? double.NaN));
                trials.Add(RunTrials.Of(r, Label(r.Task, s.Backbone.Name, s.Size)));
                r.Dispose(); // the records stay; the test logits are not needed here
                finished.Add(r);
            }
            return runs.Count;
        }, cancel, announce: false);
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
}
