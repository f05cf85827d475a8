using PeftWorkbench.Analysis;

namespace PeftWorkbench.Tests.Analysis;

public class AgreementTests
{
    [Fact]
    public void Predictions_give_label_confidence_and_correctness()
    {
        var a = Hand.Make("A", Hand.Labels6, new[] { 0, 1, 2, 0, 0, 0 });
        Assert.Equal(new[] { 0, 1, 2, 0, 0, 0 }, a.Predicted);
        Assert.Equal(new[] { true, true, true, true, false, false }, a.Correct);
        Assert.Equal(4 * 100.0 / 6, a.Top1, 10);
        // margin 2 on one of 3 classes: e^2 / (e^2 + 2)
        Assert.Equal(Math.Exp(2) / (Math.Exp(2) + 2), a.Confidence[0], 10);
    }

    [Fact]
    public void Identical_share_jaccard_and_conditional_match_hand_counts()
    {
        var p = Hand.Three();
        var id = Agreement.Identical(p);
        Assert.Equal(4 / 6.0, id["A", "B"], 12);   // same at 0, 1, 3, 4
        Assert.Equal(1.0, id["A", "A"], 12);
        Assert.Equal(3 / 6.0, id["A", "C"], 12);   // same at 1, 2, 3
        var jac = Agreement.WrongJaccard(p);
        Assert.Equal(1 / 3.0, jac["A", "B"], 12);  // {4} of {2, 4, 5}
        Assert.Equal(0.0, jac["A", "C"], 12);      // {} of {0, 4, 5}
        var cond = Agreement.WrongGivenWrong(p);
        Assert.Equal(0.5, cond["A", "B"], 12);     // B wrong on 1 of A's 2 wrong
        Assert.Equal(1.0, cond["C", "C"], 12);
        Assert.Equal(0.0, cond["C", "A"], 12);     // A right where C is wrong
        var pairs = Agreement.Pairs(p);
        Assert.Equal(6, pairs.Rows.Count);
    }

    [Fact]
    public void Clustering_puts_the_most_alike_methods_together()
    {
        // A and C agree most (0.9), B is far from both: C must sit next to A.
        var m = new MethodMatrix("s", new[] { "A", "B", "C" }, new double[,] { { 1, 0.1, 0.9 }, { 0.1, 1, 0.2 }, { 0.9, 0.2, 1 } });
        var order = Agreement.ClusterOrder(m).Select(i => m.Methods[i]).ToList();
        Assert.Equal(new[] { "A", "C", "B" }, order);
    }

    [Fact]
    public void Venn_regions_of_confident_correct_match_hand_counts()
    {
        // K = 3 of 6 (the study's 5,000 of 10,000 scaled). A's 3 most confident: {0,1,2}, all correct.
        // B's: {3,4,5}, correct {3,5}. C's (ties -> lower index): {0,1,2}, correct {1,2}.
        var p = Hand.Three(new double[] { 5, 4, 3, 2, 1, 0.5 }, new double[] { 1, 2, 3, 4, 5, 6 }, new double[] { 3, 3, 3, 1, 1, 1 });
        Assert.Equal(3, ConfidentSets.ScaledK(6));
        var v = ConfidentSets.CorrectAmongMostConfident(p);
        Assert.Equal(1, v.Of("A"));        // sample 0
        Assert.Equal(2, v.Of("B"));        // 3, 5
        Assert.Equal(2, v.Of("A", "C"));   // 1, 2
        Assert.Equal(0, v.Of("C"));
        Assert.Equal(0, v.Of("A", "B", "C"));
        Assert.Equal(7, v.ToDataFrame().Rows.Count);
        // Least confident 3: A {5,4,3} wrong {4,5}; B {0,1,2} wrong {2}.
        var w = ConfidentSets.WrongAmongLeastConfident(p, new[] { "A", "B" });
        Assert.Equal(2, w.Of("A"));
        Assert.Equal(1, w.Of("B"));
        Assert.Equal(0, w.Of("A", "B"));
        var four = new Predictions(p.Methods.Append(Hand.Make("D", Hand.Labels6, new[] { 0, 1, 2, 0, 1, 2 })));
        Assert.Equal(15, ConfidentSets.CorrectAmongMostConfident(four, k: 2).Masks.Count);
    }

    [Fact]
    public void The_study_venn_counts_are_the_published_ones()
    {
        var s = ConfidentSets.StudyCifar100;
        Assert.Equal(1634, s.Of("LoRA"));
        Assert.Equal(930, s.Of("Adapter", "SSF"));
        Assert.Equal(1425, s.Of("LoRA", "Adapter", "SSF"));
        // Union 1634 + 1559 + 1701 + 988 + 878 + 930 + 1425 = 9115; all three 1425; exactly one 1634 + 1559 + 1701 = 4894.
        Assert.Equal(9115, s.Total);
        Assert.Equal(1425 / 9115.0, s.SharedByAll, 12);
        Assert.Equal(4894 / 9115.0, s.InOnlyOne, 12);
    }

    [Fact]
    public void Venn_shares_and_mean_agreement_match_hand_counts()
    {
        // The hand Venn above: A only 1, B only 2, A & C 2 -> union 5, nobody in all three, 3 in exactly one.
        var p = Hand.Three(new double[] { 5, 4, 3, 2, 1, 0.5 }, new double[] { 1, 2, 3, 4, 5, 6 }, new double[] { 3, 3, 3, 1, 1, 1 });
        var v = ConfidentSets.CorrectAmongMostConfident(p);
        Assert.Equal(5, v.Total);
        Assert.Equal(0.0, v.SharedByAll);
        Assert.Equal(3 / 5.0, v.InOnlyOne, 12);
        Assert.True(double.IsNaN(new VennCounts("empty", new[] { "A", "B" }, new Dictionary<int, int>(), 1).SharedByAll));
        // Identical shares: A-B 4/6, A-C 3/6, B-C (same at 1, 3, 5) 3/6; both directions, mean of the six cells = 10/18.
        Assert.Equal(10 / 18.0, Agreement.Identical(p).MeanOffDiagonal(), 12);
        // NaN cells are skipped: Jaccard of wrongs A-B 1/3, A-C 0, B-C ({2,4} vs {0}) 0 -> mean 1/9.
        var m = new MethodMatrix("s", new[] { "A", "B" }, new double[,] { { 1, double.NaN }, { 0.25, 1 } });
        Assert.Equal(0.25, m.MeanOffDiagonal());
        Assert.Equal(1 / 9.0, Agreement.WrongJaccard(p).MeanOffDiagonal(), 12);
    }

    [Fact]
    public void Bad_input_gets_errors_naming_method_and_task()
    {
        var a = Hand.Make("A", Hand.Labels6, new[] { 0, 1, 2, 0, 0, 0 });
        var shorter = Hand.Make("B", new long[] { 0, 1, 2 }, new[] { 0, 1, 2 });
        var e = Assert.Throws<ArgumentException>(() => new Predictions(new[] { a, shorter }));
        Assert.Contains("B on t has 3 samples", e.Message);
        var reordered = Hand.Make("C", new long[] { 1, 0, 2, 0, 1, 2 }, new[] { 0, 1, 2, 0, 0, 0 });
        e = Assert.Throws<ArgumentException>(() => new Predictions(new[] { a, reordered }));
        Assert.Contains("labels differ", e.Message);
        Assert.Contains("C on t", e.Message);
        e = Assert.Throws<ArgumentException>(() => new Predictions(new[] { a, a }));
        Assert.Contains("'A' is named twice", e.Message);
        var p = Hand.Three();
        e = Assert.Throws<ArgumentException>(() => ConfidentSets.CorrectAmongMostConfident(p, k: 7));
        Assert.Contains("K = 7", e.Message);
        Assert.Contains("A on t", e.Message);
        e = Assert.Throws<ArgumentException>(() => Ensembles.Predict(p, new[] { "A" }, EnsembleRule.LogitMean));
        Assert.Contains("at least two", e.Message);
        e = Assert.Throws<ArgumentException>(() => ConfidentSets.CorrectAmongMostConfident(p, new[] { "A", "A" }));
        Assert.Contains("named twice", e.Message);
        e = Assert.Throws<ArgumentException>(() => MethodPredictions.FromArrays("A", "t", new float[2, 3], new long[] { 0, 1, 2 }));
        Assert.Contains("A on t", e.Message);
    }
}
