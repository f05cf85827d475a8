using Microsoft.Data.Analysis;
using PeftWorkbench.Analysis;
using PeftWorkbench.Tuning;
using XPlot.Plotly;

namespace PeftWorkbench.Findings;

/// <summary>
/// Finding 1 (notebook 02): tuned carefully, the PEFT methods other than VPT-Shallow reach similar accuracy, above full
/// fine-tuning and the linear probe on low-data tasks. Its run (<see cref="Run"/>), its tables (methods x tasks; methods
/// x groups with the paper's beside ours), charts, claims with verdicts qualified by the convergence diagnostics, and
/// its one-line finding. <see cref="From"/> builds it from scores alone (tests, or numbers from elsewhere).
/// </summary>
public sealed class SimilarAccuracy
{
    public const string Linear = "linear", Full = "full", VptShallow = "vpt_shallow", BitFit = "bitfit";
    /// <summary>The study's full FT (mean over VTAB-1K's 19 tasks): its last epoch and its best epoch; the study tuned it
    /// over lr {1e-3, 1e-2}, and 1e-2 collapses to chance, so in effect over one lr.</summary>
    public const string FullFtNote = "the study's full FT is its last epoch (58.5 %; 65.9 % at its best epoch), tuned over what was in effect one lr (1e-2 collapses to chance)";

    public IReadOnlyList<StudyRun> Runs { get; }
    public IReadOnlyList<Score> Scores { get; }
    public Convergence? Diagnostics { get; }
    /// <summary>How many trials <see cref="Run"/> trained and how many it read from the store (null from <see cref="From"/>).</summary>
    public RunTally? Tally { get; private set; }
    public IReadOnlyList<Claim> Claims { get; }

    SimilarAccuracy(IReadOnlyList<StudyRun> runs, IReadOnlyList<Score> scores, Convergence? diagnostics, string vptVariant)
    {
        Runs = runs; Scores = scores; Diagnostics = diagnostics;
        Claims = ClaimsOf(scores, diagnostics?.Reading() ?? BudgetReading.Unchecked, vptVariant);
    }

    /// <summary>Runs the protocol for every method on every task (finished trials are read from the store) and reads the finding.</summary>
    public static SimilarAccuracy Run(IReadOnlyList<string> tasks, IReadOnlyList<string> methods, string profile, string? store = null,
        long? seed = null, Action<string>? progress = null, CancellationToken cancel = default, string? backbone = null)
    {
        var since = DateTime.UtcNow;
        var runs = Study.RunAll(tasks, methods, profile, store: store, seed: seed, progress: progress, cancel: cancel, checkpoint: Study.CheckpointOf(backbone));
        var finding = From(runs);
        finding.Tally = RunTally.Of(runs, since);
        return finding;
    }

    /// <summary>The finding over finished runs (their finals' last-epoch test top-1), with their diagnostics.</summary>
    public static SimilarAccuracy From(IReadOnlyList<StudyRun> runs)
    {
        var scores = runs.Select(r => new Score(r.Task, Ranks.GroupOf(r.Task), r.Method, r.Final.Top1Last ?? double.NaN)).ToList();
        var variant = runs.Count > 0 ? Peft.OptionValues.Format(runs[0].Profile.VptShallow) : "?";
        return new SimilarAccuracy(runs, scores, Convergence.Of(runs), variant);
    }

    /// <summary>The finding over scores alone; <paramref name="diagnostics"/> null: no budget check (disagreements stand).</summary>
    public static SimilarAccuracy From(IReadOnlyList<Score> scores, Convergence? diagnostics = null, string vptVariant = "?") =>
        new(Array.Empty<StudyRun>(), scores, diagnostics, vptVariant);

    // ---------------------------------------------------------------- claims

    /// <summary>Every claim of finding 1, ours (mean test top-1 over the tasks run) beside the study's (the same methods
    /// over VTAB-1K's 19 tasks, last epoch; best epoch where the study's number depends on it).</summary>
    public static IReadOnlyList<Claim> ClaimsOf(IReadOnlyList<Score> ours, BudgetReading budget, string vptVariant = "?")
    {
        var methods = ours.Select(s => s.Method).Distinct().ToList();
        var paperLast = Means(Paper.Vtab1kScores("last"), methods);
        var paperBest = Means(Paper.Vtab1kScores("best"), methods);
        var mine = Means(ours, methods);
        var peft = methods.Where(m => m is not (Linear or Full) && paperLast.ContainsKey(m)).ToList();
        var spread = peft.Where(m => m != VptShallow).ToList();
        var claims = new List<Claim>();

        if (spread.Count >= 2)
        {
            double Spread(Dictionary<string, double> v) => spread.Max(m => v[m]) - spread.Min(m => v[m]);
            double o = Spread(mine), p = Spread(paperLast);
            claims.Add(Verdicts.Make($"PEFT spread, VPT-Shallow excluded (best - worst of {spread.Count})", o, p, o <= p + 2,
                "ours within 2 points of the study's spread or narrower", budget, Spread(paperBest)));
        }
        if (peft.Contains(VptShallow) && spread.Count >= 1)
        {
            double Gap(Dictionary<string, double> v) => v[VptShallow] - spread.Min(m => v[m]);
            double o = Gap(mine), p = Gap(paperLast);
            claims.Add(Verdicts.Make("VPT-Shallow - worst other PEFT method", o, p, Math.Sign(o) == Math.Sign(p),
                "the same sign as the study's (VPT-Shallow below the others)", budget, Gap(paperBest),
                $"VPT-Shallow variant: ours {vptVariant}, the study's code dropped-after-block0 (its prompts leave after the first block)"));
        }
        if (peft.Count >= 1 && mine.ContainsKey(Full))
        {
            int Above(Dictionary<string, double> v) => peft.Count(m => v[m] > v[Full]);
            int o = Above(mine), p = Above(paperLast);
            claims.Add(Verdicts.Make($"PEFT methods above full fine-tuning (of {peft.Count})", o, p, o * 2 > peft.Count == p * 2 > peft.Count,
                "a majority in both, or in neither", budget, Above(paperBest), FullFtNote));
            double Best(Dictionary<string, double> v) => peft.Max(m => v[m]) - v[Full];
            double ob = Best(mine), pb = Best(paperLast);
            claims.Add(Verdicts.Make("best PEFT - full fine-tuning", ob, pb, Math.Sign(ob) == Math.Sign(pb),
                "the same sign as the study's", budget, Best(paperBest), FullFtNote));
        }
        if (peft.Count >= 1 && mine.ContainsKey(Linear))
        {
            double Best(Dictionary<string, double> v) => peft.Max(m => v[m]) - v[Linear];
            double o = Best(mine), p = Best(paperLast);
            claims.Add(Verdicts.Make("best PEFT - linear probe", o, p, Math.Sign(o) == Math.Sign(p), "the same sign as the study's", budget, Best(paperBest)));
        }
        if (peft.Contains(BitFit) && peft.Count >= 3)
        {
            int Rank(Dictionary<string, double> v) => 1 + peft.Count(m => v[m] > v[BitFit]);
            int o = Rank(mine), p = Rank(paperLast);
            bool UpperHalf(int r) => r <= (peft.Count + 1) / 2;
            claims.Add(Verdicts.Make($"BitFit's rank among the {peft.Count} PEFT methods (1 = best)", o, p, UpperHalf(o) == UpperHalf(p),
                $"in the same half as the study's (ranks 1-{(peft.Count + 1) / 2} or below)", budget, Rank(paperBest)));
        }
        return claims;
    }

    static Dictionary<string, double> Means(IEnumerable<Score> scores, IReadOnlyCollection<string> methods) =>
        scores.Where(s => methods.Contains(s.Method)).GroupBy(s => s.Method).ToDictionary(g => g.Key, g => g.Average(s => s.Top1));

    // ---------------------------------------------------------------- tables, charts, lines

    /// <summary>Our test top-1, methods x tasks (and the mean).</summary>
    public DataFrame PerTask() => Tables.MethodsByTasks(Scores);

    /// <summary>Methods x groups, ours beside the paper's (last epoch), and the paper's best-epoch mean.</summary>
    public DataFrame BesidePaper() => Tables.MethodsByGroupsBesidePaper(Scores);

    public DataFrame ClaimsTable() => Verdicts.Table(Claims);

    public PlotlyChart BesidePaperChart() => Plots.Charts.BesidePaper(Scores);

    public PlotlyChart GainOverLinearChart() => Plots.Charts.GainOverLinear(Scores, "Gain over linear probing per task: ours (mini suite)");

    public PlotlyChart PaperGainOverLinearChart() => Plots.Charts.GainOverLinear(
        Ranks.FromPaper().Where(s => Scores.Any(o => o.Method == s.Method)).ToList(), "Gain over linear probing per task: the paper (VTAB-1K), same methods");

    /// <summary>The verdicts in words, one line per claim, then the tally.</summary>
    public string Summary() => Verdicts.InWords(Claims) + "\n" + Verdicts.Tally(Claims) + ".";

    /// <summary>The index page's line: the tally and each claim's numbers (ours; the paper's).</summary>
    public string FindingLine()
    {
        int tasks = Scores.Select(s => s.Task).Distinct().Count();
        return $"Finding 1 (similar accuracy): {Verdicts.Tally(Claims)} ({Scores.Select(s => s.Method).Distinct().Count()} methods, {tasks} tasks). " +
            string.Join("; ", Claims.Select(c => $"{c.What} {Fmt(c.Ours)} (paper {Fmt(c.Paper)})")) + ".";
    }

    public string VerdictLine() => Verdicts.VerdictLine(Claims);

    static string Fmt(double? v) => v is double x ? x.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) : "n/a";
}
