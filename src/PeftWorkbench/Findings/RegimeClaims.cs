using Microsoft.Data.Analysis;
using PeftWorkbench.Analysis;

namespace PeftWorkbench.Findings;

// Regime (Regime.cs): its claims, and the study's points they are set beside (read from the paper data).
public sealed partial class Regime
{
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
}
