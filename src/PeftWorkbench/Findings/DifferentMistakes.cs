using Microsoft.Data.Analysis;
using PeftWorkbench.Analysis;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Findings;

/// <summary>One task's confident-correct Venn of the trio, with the test size its chance baseline needs.</summary>
public sealed record TaskVenn(string Task, VennCounts Venn, int TestSize)
{
    public double Chance => Venn.ChanceSharedByAll(TestSize);
    /// <summary>The observed share held by all three over what independent sets of the same sizes would hold (1 = chance).</summary>
    public double OverChance => Venn.SharedByAll / Chance;
}

/// <summary>
/// Finding 2 (notebook 03): methods of similar accuracy make different mistakes. Over the predictions of finished runs:
/// pairwise agreement, the confident-set Venn of LoRA, the Houlsby adapter and SSF beside the chance baseline of
/// independent sets of the same sizes (ours and the study's), ranks per task, and ensembles (PEFT methods only, beside
/// sets that include full fine-tuning); its claims with verdicts and its one-line finding.
/// </summary>
public sealed class DifferentMistakes
{
    /// <summary>The study's Figure 1b trio: LoRA, the Houlsby adapter, SSF.</summary>
    public static IReadOnlyList<string> Trio { get; } = new[] { "lora", "rand_h_adapter", "ssf" };
    public const string PeftOnly = "greedy on val, PEFT only", WithFull = "greedy on val, with full FT and linear";
    /// <summary>The study's CIFAR-100 Venn and its test size (for the chance baseline).</summary>
    public static TaskVenn Study { get; } = new("study (CIFAR-100)", ConfidentSets.StudyCifar100, ConfidentSets.StudyTestSize);

    public IReadOnlyList<string> Tasks { get; }
    public IReadOnlyDictionary<string, Predictions> Test { get; }
    public IReadOnlyDictionary<string, Predictions> Val { get; }
    public IReadOnlyList<TaskVenn> Venns { get; }
    public IReadOnlyList<EnsembleResult> Ensembles { get; }
    public IReadOnlyList<Score> Scores { get; }
    public Convergence? Diagnostics { get; }
    public IReadOnlyList<Claim> Claims { get; }

    DifferentMistakes(IReadOnlyList<string> tasks, IReadOnlyDictionary<string, Predictions> test, IReadOnlyDictionary<string, Predictions> val,
        IReadOnlyList<Score> scores, Convergence? diagnostics)
    {
        Tasks = tasks; Test = test; Val = val; Scores = scores; Diagnostics = diagnostics;
        Venns = tasks.Where(t => Trio.All(m => test[t].Names.Contains(m)))
            .Select(t => new TaskVenn(t, ConfidentSets.CorrectAmongMostConfident(test[t], Trio), test[t].Count)).ToList();
        Ensembles = tasks.SelectMany(t => EnsemblesOf(val[t], test[t])).ToList();
        Claims = ClaimsOf(Venns, Ensembles, scores, diagnostics?.Reading() ?? BudgetReading.Unchecked);
    }

    /// <summary>The finding over the runs of <see cref="Study.RunAll"/> (each final's test logits; the val logits of each selection trained like its final, StudyRun.Val).</summary>
    public static DifferentMistakes From(IReadOnlyList<StudyRun> runs)
    {
        var tasks = runs.Select(r => r.Task).Distinct().ToList();
        var scores = runs.Select(r => new Score(r.Task, Ranks.GroupOf(r.Task), r.Method, r.Final.Top1Last ?? double.NaN)).ToList();
        return new DifferentMistakes(tasks, tasks.ToDictionary(t => t, t => Predictions.FromRuns(runs, t)),
            tasks.ToDictionary(t => t, t => Predictions.FromRuns(runs, t, "val")), scores, Convergence.Of(runs));
    }

    /// <summary>The finding over predictions alone (tests, or predictions from elsewhere); val is used only to pick ensemble members.</summary>
    public static DifferentMistakes From(IReadOnlyDictionary<string, Predictions> test, IReadOnlyDictionary<string, Predictions> val, Convergence? diagnostics = null)
    {
        var tasks = test.Keys.ToList();
        var scores = tasks.SelectMany(t => test[t].Methods.Select(m => new Score(t, Ranks.GroupOf(t), m.Method, m.Top1))).ToList();
        return new DifferentMistakes(tasks, test, val, scores, diagnostics);
    }

    static bool IsPeft(string m) => m is not (SimilarAccuracy.Linear or SimilarAccuracy.Full);

    /// <summary>Per task and rule: greedy members among the PEFT methods only, greedy among every method, and the trio.</summary>
    static IEnumerable<EnsembleResult> EnsemblesOf(Predictions val, Predictions test)
    {
        var peft = test.Names.Where(IsPeft).ToList();
        foreach (var rule in Enum.GetValues<EnsembleRule>())
        {
            if (peft.Count >= 2) yield return Analysis.Ensembles.Greedy(val.Select(peft), test.Select(peft), rule) with { Selection = PeftOnly };
            if (peft.Count < test.Names.Count && test.Names.Count >= 2) yield return Analysis.Ensembles.Greedy(val, test, rule) with { Selection = WithFull };
            if (Trio.All(test.Names.Contains)) yield return Analysis.Ensembles.Fixed(val, test, Trio, rule, "LoRA + adapter + SSF");
        }
    }

    // ---------------------------------------------------------------- claims

    /// <summary>The claims of finding 2. The Venn's is the share held by all three over its chance baseline (the study's
    /// 15.6 % over 13.7 %: 1.14); ensembles and first places are counts the study's reading implies.</summary>
    public static IReadOnlyList<Claim> ClaimsOf(IReadOnlyList<TaskVenn> venns, IReadOnlyList<EnsembleResult> ensembles, IReadOnlyList<Score> scores, BudgetReading budget)
    {
        var claims = new List<Claim>();
        var ratios = venns.Select(v => v.OverChance).Where(double.IsFinite).ToList();
        double study = Study.OverChance;
        if (ratios.Count > 0)
        {
            double o = ratios.Average();
            claims.Add(Verdicts.Make("confident-correct samples all three hold, over the chance baseline (x)", o, study, o <= 1.25 * study,
                "ours at most 1.25 x the study's ratio (the trio no more alike than the study's, beyond what set sizes force)", budget,
                note: $"ours {100 * venns.Average(v => v.Venn.SharedByAll):F1} % against a chance {100 * venns.Average(v => v.Chance):F1} %; " +
                      $"the study's {100 * Study.Venn.SharedByAll:F1} % against {100 * Study.Chance:F1} %"));
        }
        var peftOnly = ensembles.Where(e => e.Selection == PeftOnly && e.Rule == EnsembleRule.LogitMean).ToList();
        if (peftOnly.Count > 0)
        {
            double gain = peftOnly.Average(e => e.TestTop1 - e.BestMemberTest);
            int up = peftOnly.Count(e => e.TestTop1 > e.BestMemberTest);
            var withFull = ensembles.Where(e => e.Selection == WithFull && e.Rule == EnsembleRule.LogitMean).ToList();
            claims.Add(Verdicts.Make("PEFT-only ensemble (greedy on val, logit mean): gain over its best member, points", gain, null, gain > 0 && up * 2 > peftOnly.Count,
                "positive on average and on a majority of tasks (the study suggests ensembles; it publishes no number)", budget,
                note: $"up on {up} of {peftOnly.Count} tasks" + (withFull.Count > 0 ? $"; with full FT and linear in the pool: {withFull.Average(e => e.TestTop1 - e.BestMemberTest):+0.0;-0.0} points" : "")));
        }
        int tasks = scores.Select(s => s.Task).Distinct().Count();
        if (tasks >= 2)
        {
            var methods = scores.Select(s => s.Method).Distinct().ToList();
            var paper = Paper.Vtab1kScores().Where(s => methods.Contains(s.Method)).ToList();
            int Winners(IReadOnlyList<Score> s) => Ranks.RankAll(s).Where(r => r.Rank == 1).Select(r => r.S.Method).Distinct().Count();
            int o = Winners(scores), p = paper.Count > 0 ? Winners(paper) : 0;
            claims.Add(Verdicts.Make($"methods that rank first on some task ({tasks} tasks; the study's 19)", o, p, (o > 1) == (p > 1),
                "more than one in both (no method best everywhere)", budget));
        }
        return claims;
    }

    // ---------------------------------------------------------------- tables, charts, lines

    /// <summary>Per task: PEFT top-1 spread, the share of samples two PEFT methods predict alike, and the Jaccard of their mistakes.</summary>
    public DataFrame AgreementTable()
    {
        var rows = Tasks.Select(t => test(t)).Where(p => p.Methods.Count >= 2).Select(p => (p.Task, Spread: p.Methods.Max(m => m.Top1) - p.Methods.Min(m => m.Top1),
            Same: Agreement.Identical(p).MeanOffDiagonal(), Wrong: Agreement.WrongJaccard(p).MeanOffDiagonal())).ToList();
        return new DataFrame(new StringDataFrameColumn("task", rows.Select(r => r.Task)),
            new PrimitiveDataFrameColumn<double>("PEFT top-1 spread (points)", rows.Select(r => Verdicts.Round(r.Spread))),
            new PrimitiveDataFrameColumn<double>("pairs predicting alike (%)", rows.Select(r => Verdicts.Round(100 * r.Same))),
            new PrimitiveDataFrameColumn<double>("mistakes in common (Jaccard, %)", rows.Select(r => Verdicts.Round(100 * r.Wrong))));
        Predictions test(string t) => Test[t].Select(Test[t].Names.Where(IsPeft));
    }

    /// <summary>Per task and the study: K, the confident-correct union, the share all three hold, its chance baseline, the ratio.</summary>
    public DataFrame VennTable()
    {
        var rows = Venns.Append(Study).ToList();
        return new DataFrame(new StringDataFrameColumn("task", rows.Select(r => r.Task)),
            new PrimitiveDataFrameColumn<int>("K", rows.Select(r => r.Venn.K)),
            new PrimitiveDataFrameColumn<int>("union", rows.Select(r => r.Venn.Total)),
            new PrimitiveDataFrameColumn<double>("all three (%)", rows.Select(r => Verdicts.Round(100 * r.Venn.SharedByAll))),
            new PrimitiveDataFrameColumn<double>("chance (%)", rows.Select(r => Verdicts.Round(100 * r.Chance))),
            new PrimitiveDataFrameColumn<double>("over chance (x)", rows.Select(r => double.IsFinite(r.OverChance) ? Math.Round(r.OverChance, 2) : (double?)null)),
            new PrimitiveDataFrameColumn<double>("one alone (%)", rows.Select(r => Verdicts.Round(100 * r.Venn.InOnlyOne))));
    }

    /// <summary>Ensemble gains over the best member (points), selection x rule rows, one column per task and the mean.</summary>
    public DataFrame EnsembleGainsTable()
    {
        var keys = Ensembles.Select(e => (e.Selection, e.Rule)).Distinct().ToList();
        var cols = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("members", keys.Select(k => k.Selection)), new StringDataFrameColumn("rule", keys.Select(k => k.Rule.ToString())),
        };
        foreach (var t in Tasks)
            cols.Add(new PrimitiveDataFrameColumn<double>(t, keys.Select(k => Verdicts.Round(Ensembles.FirstOrDefault(e => e.Task == t && (e.Selection, e.Rule) == k) is { } e ? e.TestTop1 - e.BestMemberTest : null))));
        cols.Add(new PrimitiveDataFrameColumn<double>("mean", keys.Select(k => Verdicts.Round(Ensembles.Where(e => (e.Selection, e.Rule) == k).Average(e => e.TestTop1 - e.BestMemberTest)))));
        return new DataFrame(cols);
    }

    public DataFrame ClaimsTable() => Verdicts.Table(Claims);

    public string Summary() => Verdicts.InWords(Claims) + "\n" + Verdicts.Tally(Claims) + ".";

    public string FindingLine() =>
        $"Finding 2 (different mistakes): {Verdicts.Tally(Claims)} ({Tasks.Count} tasks). " +
        string.Join("; ", Claims.Select(c => $"{c.What} {Fmt(c.Ours)} (paper {Fmt(c.Paper)})")) + ".";

    public string VerdictLine() => Verdicts.VerdictLine(Claims);

    static string Fmt(double? v) => v is double x ? x.ToString("0.0#", System.Globalization.CultureInfo.InvariantCulture) : "no number";
}
