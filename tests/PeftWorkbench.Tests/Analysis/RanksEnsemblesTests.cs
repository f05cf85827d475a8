using PeftWorkbench.Analysis;

namespace PeftWorkbench.Tests.Analysis;

public class RanksEnsemblesTests
{
    static readonly Score[] Scores =
    {
        new("t1", "g", "A", 90), new("t1", "g", "B", 90), new("t1", "g", "C", 80),
        new("t2", "g", "A", 70), new("t2", "g", "B", 80), new("t2", "g", "C", 80),
    };

    [Fact]
    public void Ranks_share_the_best_rank_of_a_tie()
    {
        var ranks = Ranks.RankAll(Scores).ToDictionary(r => (r.S.Task, r.S.Method), r => r.Rank);
        Assert.Equal(1, ranks[("t1", "A")]); Assert.Equal(1, ranks[("t1", "B")]); Assert.Equal(3, ranks[("t1", "C")]);
        Assert.Equal(3, ranks[("t2", "A")]); Assert.Equal(1, ranks[("t2", "B")]); Assert.Equal(1, ranks[("t2", "C")]);
        var mean = Ranks.MeanRank(Scores);
        Assert.Equal("B", mean["method"][0]);
        Assert.Equal(1.0, (double)mean["mean_rank"][0]!);
        var freq = Ranks.RankFrequency(Scores);
        int a = Enumerable.Range(0, (int)freq.Rows.Count).First(i => (string)freq["method"][i] == "A");
        Assert.Equal(1, freq["rank_1"][a]); Assert.Equal(0, freq["rank_2"][a]); Assert.Equal(1, freq["rank_3"][a]);
        Assert.Throws<ArgumentException>(() => Ranks.PerTask(Scores.Append(new Score("t1", "g", "A", 1)).ToList()));
    }

    [Fact]
    public void Gain_over_linear_takes_full_and_the_peft_range()
    {
        var s = new[]
        {
            new Score("x", "structured", "linear", 50), new Score("x", "structured", "full", 55),
            new Score("x", "structured", "lora", 60), new Score("x", "structured", "ssf", 70),
            new Score("y", "natural", "linear", 80), new Score("y", "natural", "full", 70), new Score("y", "natural", "lora", 82),
        };
        var rows = GainOverLinear.Rows(s);
        Assert.Equal(new[] { "y", "x" }, rows.Select(r => r.Task)); // natural before structured
        Assert.Equal(5, rows[1].FullGain); Assert.Equal(10, rows[1].PeftMinGain); Assert.Equal(20, rows[1].PeftMaxGain);
        Assert.Equal("ssf", rows[1].PeftMax);
        Assert.Equal(-10, rows[0].FullGain); Assert.Equal(2, rows[0].PeftMinGain);
    }

    [Fact]
    public void Each_rule_combines_as_computed_by_hand()
    {
        long[] labels = { 0, 1 };
        var p = new Predictions(new[]
        {
            Hand.Rows("A", labels, new[] { new float[] { 10, 0, 0 }, new float[] { 1, 0, 0 } }),
            Hand.Rows("B", labels, new[] { new float[] { 0, 3, 0 }, new float[] { 0, 3, 0 } }),
            Hand.Rows("C", labels, new[] { new float[] { 0, 3, 0 }, new float[] { 0, 0, 2 } }),
        });
        // Sample 0: logit mean [10/3, 2, 0] -> 0; probability mean: class 0 .9999 + 2 x .0453 < class 1 2 x .9094 -> 1; votes 2 for class 1.
        // Sample 1: logit mean [1/3, 1, 2/3] -> 1; probabilities [.728, 1.228, 1.044] -> 1; votes tie 1-1-1, summed probability -> 1.
        var all = new[] { "A", "B", "C" };
        Assert.Equal(new[] { 0, 1 }, Ensembles.Predict(p, all, EnsembleRule.LogitMean));
        Assert.Equal(new[] { 1, 1 }, Ensembles.Predict(p, all, EnsembleRule.ProbabilityMean));
        Assert.Equal(new[] { 1, 1 }, Ensembles.Predict(p, all, EnsembleRule.MajorityVote));
        Assert.Equal(100.0, Ensembles.Top1(p, all, EnsembleRule.LogitMean));
        Assert.Equal(50.0, Ensembles.Top1(p, all, EnsembleRule.MajorityVote));
    }

    // Labels all 0 of 2 classes. M1 right on 0-2 (margin 2), M2 right on 3-4 (margin 3), M3 right on 0 only.
    static Predictions Val(long[]? labels = null, string split = "val")
    {
        labels ??= new long[5];
        MethodPredictions M(string name, bool[] right, float margin) => Hand.Rows(name, labels,
            right.Select(r => r ? new[] { margin, 0f } : new[] { 0f, 1f }).ToArray(), split: split);
        return new(new[]
        {
            M("M3", new[] { true, false, false, false, false }, 1),
            M("M1", new[] { true, true, true, false, false }, 2),
            M("M2", new[] { false, false, false, true, true }, 3),
        });
    }

    [Fact]
    public void Greedy_starts_from_the_best_and_adds_while_val_rises()
    {
        // M1 alone 60 %; M1+M2 logit mean right everywhere (100 %); M1+M3 stays 60 %; nothing beats 100 %.
        var chosen = Ensembles.GreedySelect(Val(), EnsembleRule.LogitMean);
        Assert.Equal(new[] { "M1", "M2" }, chosen);
        Assert.Equal(new[] { "M1" }, Ensembles.GreedySelect(Val(), EnsembleRule.LogitMean, maxMembers: 1));
    }

    [Fact]
    public void Greedy_never_reads_test_labels()
    {
        var test = Val(split: "test");
        var poisoned = Val(new long[] { 1, 1, 1, 1, 1 }, split: "test");
        var clean = Ensembles.Greedy(Val(), test, EnsembleRule.LogitMean, "g");
        var bad = Ensembles.Greedy(Val(), poisoned, EnsembleRule.LogitMean, "g");
        Assert.Equal(clean.Members, bad.Members);
        Assert.Equal(clean.ValTop1, bad.ValTop1);
        Assert.NotEqual(clean.TestTop1, bad.TestTop1); // the poison reached the test score, not the choice
        Assert.Equal(100.0, clean.TestTop1);
        Assert.Equal(40.0, clean.TestTop1 - clean.BestMemberTest);
    }

    [Fact]
    public void A_fixed_ensemble_scores_its_members_beside_the_best_one()
    {
        // All three, logit mean on the Val() set: sample 0 [3, 1] -> 0 right; 1-2 [2, 2] tie -> class 0 right;
        // 3-4 [3, 2] -> 0 right: 100 %. Best member M1 60 %. M3 + M2: samples 0 [1, 1] tie -> 0, 1-2 [0, 2] wrong, 3-4 right: 60 %.
        var all = Ensembles.Fixed(Val(), Val(split: "test"), new[] { "M3", "M1", "M2" }, EnsembleRule.LogitMean, "all three", "g");
        Assert.Equal(100.0, all.TestTop1);
        Assert.Equal(100.0, all.ValTop1);
        Assert.Equal(("M1", 60.0), (all.BestMember, all.BestMemberTest));
        Assert.Equal("all three", all.Selection);
        var pair = Ensembles.Fixed(Val(), Val(split: "test"), new[] { "M3", "M2" }, EnsembleRule.LogitMean, "pair");
        Assert.Equal(60.0, pair.TestTop1);
        Assert.Equal(("M2", 40.0), (pair.BestMember, pair.BestMemberTest));
        var greedy = Ensembles.Greedy(Val(), Val(split: "test"), EnsembleRule.LogitMean, "g");
        Assert.Equal(Ensembles.GreedyOnVal, greedy.Selection);
        var table = Ensembles.Table(new[] { all, greedy });
        Assert.Equal(new[] { "all three", Ensembles.GreedyOnVal }, table["selection"].Cast<string>());
        Assert.Equal(new[] { 40.0, 40.0 }, table["gain"].Cast<double>());
        var gains = Ensembles.GroupGains(new[] { all, pair, greedy });
        Assert.Equal(3, gains.Rows.Count); // one row per (group, selection, rule)
        var e = Assert.Throws<ArgumentException>(() => Ensembles.Fixed(Val(), Val(split: "test"), new[] { "M1" }, EnsembleRule.LogitMean, "one"));
        Assert.Contains("at least two", e.Message);
    }
}
