using PeftWorkbench.Findings;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Findings;

public class BudgetAgreementTests
{
    static TrialRecord Tune(string profile, string method, double lr, double top1, string task = "mnist") => new()
    {
        Key = new TrialConfig { Task = task, Method = method, Lr = lr, Profile = profile }.Key,
        Config = new TrialConfig { Task = task, Method = method, Lr = lr, Profile = profile },
        Top1Last = top1, Epochs = 10,
    };

    static TrialRecord Final(TrialRecord selected, double top1) => new()
    {
        Key = (selected.Config with { Phase = "final", TuneGrid = "g" }).Key, Config = selected.Config with { Phase = "final", TuneGrid = "g" },
        Top1Last = top1, Epochs = 10,
    };

    /// <summary>A store's records for one method: two tune trials, and the final of the better one.</summary>
    static IEnumerable<TrialRecord> Run(string profile, string method, double valLow, double valHigh, double test, string task = "mnist")
    {
        var low = Tune(profile, method, 1e-3, valLow, task);
        var high = Tune(profile, method, 1e-2, valHigh, task);
        return new[] { low, high, Final(valHigh > valLow ? high : low, test) };
    }

    [Fact]
    public void Each_pair_agrees_on_selection_and_test_only_where_both_do()
    {
        var short_ = Run("default", "lora", 80, 90, 91.0)                 // selects 1e-2, as the reference; test 0.6 below
            .Concat(Run("default", "bitfit", 60, 70, 70.0))               // selects 1e-2, the reference 1e-3; test 5 below
            .Concat(Run("default", "full", 90, 85, 93.0, task: "landcover")) // no reference run
            .Concat(Run("default", "linear", 50, 55, 60.0));              // same selection, test exactly 1.0 below
        var reference = Run("reference", "lora", 85, 92, 91.6)
            .Concat(Run("reference", "bitfit", 80, 75, 75.0))
            .Concat(Run("reference", "linear", 52, 57, 61.0))
            .Concat(Run("reference", "ln", 52, 57, 61.0));
        var a = BudgetAgreement.Of(RunTrials.FromRecords(short_), RunTrials.FromRecords(reference));

        Assert.Equal(new[] { "bitfit", "linear", "lora" }, a.Pairs.Select(p => p.Method));
        var bitfit = a.Pairs.Single(p => p.Method == "bitfit");
        Assert.Equal(("lr 0.01, wd 0, dp 0", "lr 0.001, wd 0, dp 0"), (bitfit.Selected, bitfit.ReferenceSelected));
        Assert.False(bitfit.SameSelection);
        Assert.False(bitfit.TestWithin(BudgetAgreement.Tolerance));
        Assert.Equal((2, 2), (a.SameSelections, a.TestsWithin)); // 1.0 below counts as within; 5 below does not
        Assert.Equal(new[] { "landcover/full (no reference)", "mnist/ln (reference only)" }, a.Unmatched);
        Assert.StartsWith("Against the reference budget, the selection agrees on 2 of 3 pairs and the final test top-1 is within 1 point on 2 of 3", a.Sentence());
        Assert.Contains("worst -5.0", a.Sentence());
    }

    [Fact]
    public void A_missing_store_is_named()
    {
        var dir = Path.Combine(Path.GetTempPath(), "peft-no-such-store-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<DirectoryNotFoundException>(() => BudgetAgreement.OfStores(dir, dir));
        Assert.Contains(dir, e.Message);
    }
}
