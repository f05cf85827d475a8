using PeftWorkbench.Analysis;
using PeftWorkbench.Findings;

namespace PeftWorkbench.Tests.Findings;

public class ClaimTests
{
    static readonly BudgetReading Untrusted = new(false, "3 of 4 finals had not settled");

    /// <summary>Two tasks; the PEFT methods' means are given by <paramref name="top1"/> (the same on both tasks).</summary>
    static List<Score> Hand(params (string Method, double Top1)[] top1) =>
        new[] { ("mnist", "natural"), ("landcover", "specialized") }.SelectMany(t => top1.Select(m => new Score(t.Item1, t.Item2, m.Method, m.Top1))).ToList();

    static IReadOnlyList<Claim> reversed0() => SimilarAccuracy.ClaimsOf(Hand(("lora", 80), ("ssf", 79), ("bitfit", 78), ("full", 90)), BudgetReading.Unchecked);

    static Claim Find(IReadOnlyList<Claim> claims, string start) => Assert.Single(claims, c => c.What.StartsWith(start, StringComparison.Ordinal));

    [Fact]
    public void Peft_above_full_agrees_and_full_above_every_peft_disagrees()
    {
        var study = SimilarAccuracy.ClaimsOf(Hand(("lora", 80), ("ssf", 79), ("bitfit", 78), ("full", 70), ("linear", 60)), BudgetReading.Unchecked);
        Assert.Equal(Verdict.Agrees, Find(study, "best PEFT - full").Verdict);
        Assert.Equal((10.0, Verdict.Agrees), (Find(study, "best PEFT - full").Ours!.Value, Find(study, "PEFT methods above full").Verdict));
        Assert.Equal(3.0, Find(study, "PEFT methods above full").Ours);
        // The study's full FT: its last epoch (58.5) in "paper", its best epoch (65.9) beside it.
        // Best of lora/ssf/bitfit: ssf 73.0 - 58.5 at the last epoch, lora 73.6 - 65.9 at the best.
        Assert.Equal((14.5, 7.7), (Math.Round(Find(reversed0(), "best PEFT - full").Paper!.Value, 1), Math.Round(Find(reversed0(), "best PEFT - full").PaperBestEpoch!.Value, 1)));

        var reversed = SimilarAccuracy.ClaimsOf(Hand(("lora", 80), ("ssf", 79), ("bitfit", 78), ("full", 90), ("linear", 60)), BudgetReading.Unchecked);
        Assert.Equal((-10.0, Verdict.Disagrees), (Find(reversed, "best PEFT - full").Ours!.Value, Find(reversed, "best PEFT - full").Verdict));
        Assert.Equal((0.0, Verdict.Disagrees), (Find(reversed, "PEFT methods above full").Ours!.Value, Find(reversed, "PEFT methods above full").Verdict));
        // The study's side: all three of these PEFT methods above its full FT, at its last epoch and at its best.
        Assert.Equal((3.0, 3.0), (Find(reversed, "PEFT methods above full").Paper!.Value, Find(reversed, "PEFT methods above full").PaperBestEpoch!.Value));

        // Under a budget the diagnostics do not vouch for, a disagreement and an agreement are both inconclusive, and the
        // note says which way the numbers point.
        var untrusted = SimilarAccuracy.ClaimsOf(Hand(("lora", 80), ("ssf", 79), ("bitfit", 78), ("full", 90), ("linear", 60)), Untrusted);
        Assert.Equal(Verdict.Inconclusive, Find(untrusted, "best PEFT - full").Verdict);
        Assert.Contains("disagrees on these numbers, but 3 of 4 finals had not settled", Find(untrusted, "best PEFT - full").Note);
        Assert.Equal(Verdict.Agrees, Find(reversed, "best PEFT - linear").Verdict);
        Assert.Equal(Verdict.Inconclusive, Find(untrusted, "best PEFT - linear").Verdict);
        Assert.Contains("agrees on these numbers, but", Find(untrusted, "best PEFT - linear").Note);
    }

    [Fact]
    public void The_spread_leaves_vpt_shallow_out_and_reports_it_apart()
    {
        var claims = SimilarAccuracy.ClaimsOf(Hand(("lora", 80), ("ssf", 79), ("vpt_shallow", 50), ("full", 70)), BudgetReading.Unchecked, "through-all-blocks");
        var spread = Find(claims, "PEFT spread");
        Assert.Equal(1.0, spread.Ours!.Value, 9);                               // 80 - 79: VPT-Shallow's 50 is not in it
        Assert.Equal(Verdict.Agrees, spread.Verdict);
        var vpt = Find(claims, "VPT-Shallow");
        Assert.Equal((-29.0, Verdict.Agrees), (vpt.Ours!.Value, vpt.Verdict));  // below the worst other, as the study's
        Assert.Contains("ours through-all-blocks", vpt.Note);

        var wide = Find(SimilarAccuracy.ClaimsOf(Hand(("lora", 80), ("ssf", 60), ("full", 70)), BudgetReading.Unchecked), "PEFT spread");
        Assert.Equal(Verdict.Disagrees, wide.Verdict);                          // 20 points against the study's under 1
    }

    [Fact]
    public void BitFit_s_rank_among_peft_methods_can_differ_from_the_study_s()
    {
        // The study ranks these four: lora 72.9, ssf 73.0, bitfit 72.2, ln 71.2 -> BitFit 3rd of 4 (lower half).
        var low = Find(SimilarAccuracy.ClaimsOf(Hand(("lora", 80), ("ssf", 79), ("bitfit", 75), ("ln", 70)), BudgetReading.Unchecked), "BitFit");
        Assert.Equal((3.0, 3.0, Verdict.Agrees), (low.Ours!.Value, low.Paper!.Value, low.Verdict));
        var top = Find(SimilarAccuracy.ClaimsOf(Hand(("lora", 80), ("ssf", 79), ("bitfit", 85), ("ln", 70)), BudgetReading.Unchecked), "BitFit");
        Assert.Equal((1.0, Verdict.Disagrees), (top.Ours!.Value, top.Verdict));
    }

    [Fact]
    public void The_chance_baseline_of_independent_sets_is_the_hand_computation()
    {
        // Three sets of 50 of 100 samples: expected triple 100 x 0.5^3 = 12.5, expected union 100 x (1 - 0.5^3) = 87.5.
        var v = new VennCounts("hand", new[] { "a", "b", "c" }, new Dictionary<int, int> { [1] = 20, [2] = 20, [4] = 20, [3] = 10, [5] = 10, [6] = 10, [7] = 10 }, 50);
        Assert.Equal(new[] { 50, 50, 50 }, v.SetSizes);
        Assert.Equal(12.5 / 87.5, v.ChanceSharedByAll(100), 12);
        // The study's sets (4,925, 4,902, 4,934 of 10,000): 13.7 % by chance against its observed 15.6 %.
        Assert.Equal(new[] { 4925, 4902, 4934 }, ConfidentSets.StudyCifar100.SetSizes);
        Assert.Equal(0.137, ConfidentSets.StudyCifar100.ChanceSharedByAll(10000), 3);
        Assert.Equal(1.14, DifferentMistakes.Study.OverChance, 2);
    }

    [Fact]
    public void Finding_2_claims_follow_the_venn_ratio_the_ensembles_and_the_winners()
    {
        // Alike: all 50 confident-correct samples in all three sets (ratio 100 % over the 1/7 that independent sets of 50 of 100 would share: 7 x chance).
        var alike = new TaskVenn("mnist", new VennCounts("hand", DifferentMistakes.Trio, new Dictionary<int, int> { [7] = 50 }, 50), 100);
        var apart = new TaskVenn("mnist", new VennCounts("hand", DifferentMistakes.Trio, new Dictionary<int, int> { [1] = 20, [2] = 20, [4] = 20, [3] = 10, [5] = 10, [6] = 10, [7] = 10 }, 50), 100);
        EnsembleResult E(string task, double test, double best) => new(task, "natural", EnsembleRule.LogitMean, new[] { "lora", "ssf" }, 0, test, "lora", best, DifferentMistakes.PeftOnly);
        var gains = new[] { E("mnist", 81, 80), E("landcover", 91, 90) };
        var losses = new[] { E("mnist", 79, 80), E("landcover", 89, 90) };
        var oneWinner = Hand(("lora", 80), ("ssf", 79));
        var twoWinners = new List<Score> { new("mnist", "natural", "lora", 80), new("mnist", "natural", "ssf", 79), new("landcover", "specialized", "lora", 70), new("landcover", "specialized", "ssf", 75) };

        var agree = DifferentMistakes.ClaimsOf(new[] { apart }, gains, twoWinners, BudgetReading.Unchecked);
        Assert.All(agree, c => Assert.Equal(Verdict.Agrees, c.Verdict));
        Assert.Equal(1.0, Find(agree, "PEFT-only ensemble").Ours!.Value, 9);
        Assert.Null(Find(agree, "PEFT-only ensemble").Paper);                   // the study publishes no ensemble number

        var disagree = DifferentMistakes.ClaimsOf(new[] { alike }, losses, oneWinner, BudgetReading.Unchecked);
        Assert.All(disagree, c => Assert.Equal(Verdict.Disagrees, c.Verdict));
        Assert.Equal(7.0, Find(disagree, "confident-correct").Ours!.Value, 9);
        Assert.All(DifferentMistakes.ClaimsOf(new[] { alike }, losses, oneWinner, new BudgetReading(false, "unknown")), c => Assert.Equal(Verdict.Inconclusive, c.Verdict));
    }

    [Fact]
    public void The_claims_table_puts_text_first_and_rounds_to_one_decimal()
    {
        var t = Verdicts.Table(new[] { new Claim("x", 1.2345, 2.3456, Verdict.Agrees, "rule", 3.4567) });
        Assert.Equal(new[] { "claim", "verdict", "ours", "paper", "paper_best_epoch", "rule", "note" }, t.Columns.Select(c => c.Name));
        Assert.Equal((1.2, 2.3, 3.5), ((double)t["ours"][0], (double)t["paper"][0], (double)t["paper_best_epoch"][0]));
        Assert.Equal("1 of 1 claims agree with the study, 0 disagree, 0 are inconclusive under this budget", Verdicts.Tally(new[] { new Claim("x", 1, 2, Verdict.Agrees, "r") }));
    }
}
