using PeftWorkbench.Findings;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Findings;

public class ConvergenceTests
{
    static TrialRecord Tune(string method, double lr, double top1, double[]? loss = null, string task = "mnist", double wd = 1e-4, string status = "ok") => new()
    {
        Key = new TrialConfig { Task = task, Method = method, Lr = lr, WeightDecay = wd }.Key,
        Config = new TrialConfig { Task = task, Method = method, Lr = lr, WeightDecay = wd },
        Status = status, Top1Last = status == "ok" ? top1 : null, LossCurve = loss, Epochs = loss?.Length ?? 2,
    };

    static TrialRecord Final(TrialRecord selected, double top1, double[]? loss) => new()
    {
        Key = (selected.Config with { Phase = "final" }).Key, Config = selected.Config with { Phase = "final" },
        Top1Last = top1, LossCurve = loss, Epochs = loss?.Length ?? 5,
    };

    static readonly double[] Falling = { 2.3, 1.5, 1.0, 0.7, 0.5 };      // still improving over its last quarter
    static readonly double[] Plateau = { 2.3, 0.6, 0.52, 0.501, 0.500 };  // settled
    static readonly double[] Rising = { 2.51, 2.6, 2.7, 2.8, 2.88 };      // notebook 06's lr 0.03 final

    [Fact]
    public void A_falling_loss_is_improving_a_plateau_is_settled_a_rising_one_worsening_and_one_epoch_unknown()
    {
        Assert.Equal(Trend.Improving, Convergence.LossTrend(Falling));
        Assert.Equal(Trend.Flat, Convergence.LossTrend(Plateau));
        Assert.Equal(Trend.Worsening, Convergence.LossTrend(Rising));
        Assert.Equal(Trend.Unknown, Convergence.LossTrend(new[] { 1.0 }));
        // The last quarter of 8 epochs is 2: 0.50 -> 0.40 is 20 % (improving); a top-1 gain of 0.5 point is flat.
        Assert.Equal(Trend.Improving, Convergence.LossTrend(new[] { 2, 1.5, 1, 0.8, 0.6, 0.5, 0.45, 0.4 }));
        Assert.Equal(Trend.Improving, Convergence.Top1Trend(new[] { 40.0, 60, 70, 80 }));
        Assert.Equal(Trend.Flat, Convergence.Top1Trend(new[] { 40.0, 60, 80, 80.5 }));
    }

    [Fact]
    public void A_run_reports_its_grid_edge_chance_level_trials_and_test_against_val()
    {
        // mnist has 10 classes: chance 10 %, the band on val200 reaches 14.2 %.
        var low = Tune("lora", 1e-3, 12.0, Plateau);
        var high = Tune("lora", 1e-2, 80.0, Plateau);
        var run = new RunTrials("mnist", "lora", new[] { low, high }, high, Final(high, 85.5, Falling));
        var d = Assert.Single(Convergence.Of(new[] { run }).Runs);
        Assert.Equal("lr highest", d.Edge);                 // wd has one value: no edge on it
        Assert.Equal((1, false), (d.AtChance, d.SelectedAtChance));
        Assert.Equal((Trend.Flat, "train loss", Trend.Improving), (d.Tune, d.TuneCurve, d.Final));
        Assert.Equal(5.5, d.TestMinusVal!.Value, 6);
        Assert.Equal(14.2, Convergence.ChanceBand(10, 200), 1);
    }

    [Fact]
    public void The_sentence_counts_runs_still_improving_and_the_budget_is_not_trusted()
    {
        var runs = new[] { ("lora", Falling), ("ssf", Falling), ("bitfit", Plateau) }.Select(x =>
        {
            var t = Tune(x.Item1, 1e-2, 70, Plateau);
            return new RunTrials("mnist", x.Item1, new[] { t, Tune(x.Item1, 1e-3, 60, Plateau) }, t, Final(t, 72, x.Item2));
        });
        var c = Convergence.Of(runs);
        Assert.StartsWith("2 of 3 runs were still improving when training stopped (the final's training loss over its last quarter)", c.Sentence());
        Assert.Contains("3 selections took the highest lr tried and 0 the lowest", c.Sentence());
        Assert.False(c.Reading().Trusted);
        Assert.Contains("2 of 3 runs had not settled", c.Reading().Why);
    }

    [Fact]
    public void A_val_curve_decides_settling_over_the_finals_training_loss()
    {
        // The final's training loss keeps falling (0.02 -> 0.01 is 50 %) while val200 is flat: settled. A val curve still
        // rising 3 points over its last quarter is improving even when the final's loss is flat.
        var flatVal = Tune("full", 1e-3, 90, Plateau) with { EvalCurve = new double?[] { 60, 85, 89.5, 90, 90 } };
        var risingVal = Tune("bitfit", 1e-2, 70, Plateau) with { EvalCurve = new double?[] { 30, 50, 60, 67, 70 } };
        var runs = new[]
        {
            new RunTrials("mnist", "full", new[] { flatVal }, flatVal, Final(flatVal, 91, new[] { 2.0, 0.5, 0.1, 0.02, 0.01 })),
            new RunTrials("mnist", "bitfit", new[] { risingVal }, risingVal, Final(risingVal, 71, Plateau)),
        };
        var c = Convergence.Of(runs);
        Assert.Equal(new[] { Trend.Flat, Trend.Improving }, c.Runs.Select(r => r.Settling));
        Assert.Equal(new[] { Trend.Improving, Trend.Flat }, c.Runs.Select(r => r.Final)); // what the training loss alone says
        Assert.StartsWith("1 of 2 runs were still improving when training stopped (val top-1 of the selected configuration trained for its whole schedule, over its last quarter)", c.Sentence());
        Assert.Contains("1 of 2 runs had not settled", c.Reading().Why);
    }

    [Fact]
    public void Records_without_curves_read_unknown_never_a_guess()
    {
        var t = Tune("lora", 1e-2, 70, loss: null);
        var c = Convergence.Of(new TrialRecord[] { t, Final(t, 72, loss: null) });
        var d = Assert.Single(c.Runs);
        Assert.Equal((Trend.Unknown, "no curve on record", Trend.Unknown), (d.Tune, d.TuneCurve, d.Final));
        Assert.StartsWith("Whether the 1 runs had converged is unknown", c.Sentence());
        Assert.Equal("convergence unknown (no training curve on record, or one epoch)", c.Reading().Why);
    }

    [Fact]
    public void A_selected_trial_at_chance_makes_the_budget_untrusted()
    {
        var t = Tune("linear", 1e-3, 11.0, Plateau);
        var c = Convergence.Of(new[] { new RunTrials("mnist", "linear", new[] { t }, t, Final(t, 30, Plateau)) });
        Assert.True(Assert.Single(c.Runs).SelectedAtChance);
        Assert.Equal("1 of 1 selected tune trials sat at chance level", c.Reading().Why);
        Assert.Contains("1 of 1 tune trials sat at chance level, 1 of them selected", c.Sentence());
    }

    [Fact]
    public void Lr_shares_stand_beside_the_study_s_for_the_same_methods()
    {
        var t = Tune("full", 1e-2, 70, Plateau);
        var c = Convergence.Of(new[] { new RunTrials("mnist", "full", new[] { t }, t, Final(t, 72, Plateau)) });
        var study = Convergence.StudyLrSelections().Where(s => s.Method == "full").ToList();
        Assert.Equal(19, study.Count);
        var at1e2 = Assert.Single(c.LrShares, s => s.Lr == 1e-2);
        Assert.Equal((1, study.Count(s => s.Lr == 1e-2)), (at1e2.Ours, at1e2.Study));
        Assert.Equal(173, Convergence.StudyLrSelections().Count(s => s.Lr == 1e-3));  // issue 27: 173 of 304
    }
}
