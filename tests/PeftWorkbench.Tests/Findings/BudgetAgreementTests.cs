using PeftWorkbench.Findings;
using PeftWorkbench.Training;
using TorchSharp;
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

    static TrialRecord Final(TrialRecord selected, double top1, int epochs) => new()
    {
        Key = (selected.Config with { Phase = "final", TuneGrid = "g" }).Key, Config = selected.Config with { Phase = "final", TuneGrid = "g" },
        Top1Last = top1, Epochs = epochs,
    };

    /// <summary>A store's records for one method: two tune trials, and the final of the better one.</summary>
    static IEnumerable<TrialRecord> Run(string profile, string method, double valLow, double valHigh, double test, string task = "mnist", int? epochs = null)
    {
        var low = Tune(profile, method, 1e-3, valLow, task);
        var high = Tune(profile, method, 1e-2, valHigh, task);
        return new[] { low, high, Final(valHigh > valLow ? high : low, test, epochs ?? (profile == "reference" ? 30 : 10)) };
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
        Assert.DoesNotContain("by construction", a.Sentence());
        Assert.All(a.Pairs, p => Assert.False(p.SameSchedule));
    }

    [Fact]
    public void Pairs_that_trained_the_same_schedule_are_said_to_agree_by_construction_and_the_rest_are_counted_apart()
    {
        // default gives linear the reference's 30 epochs: its pair agrees by construction; lora and bitfit are measured.
        var ours = Run("default", "lora", 80, 90, 91.0).Concat(Run("default", "bitfit", 60, 70, 70.0)).Concat(Run("default", "linear", 52, 57, 61.0, epochs: 30));
        var reference = Run("reference", "lora", 85, 92, 91.6).Concat(Run("reference", "bitfit", 80, 75, 75.0)).Concat(Run("reference", "linear", 52, 57, 61.0));
        var a = BudgetAgreement.Of(RunTrials.FromRecords(ours), RunTrials.FromRecords(reference));
        Assert.Equal(new[] { false, true, false }, a.Pairs.Select(p => p.SameSchedule)); // bitfit, linear, lora
        Assert.Contains("1 of the 3 trained the same schedule under both budgets", a.Sentence());
        Assert.Contains("on the other 2 the selection agrees on 1 and the test is within 1 point on 1.", a.Sentence());
        Assert.Equal(new[] { false, true, false }, a.Table()["same schedule"].Cast<bool>());
    }

    [Fact]
    public void A_store_that_holds_a_runs_older_final_compares_the_one_finished_last()
    {
        // The same pair run again after its epochs changed (new tune keys, so a new final key): the older final stays in
        // the store, and the comparison (and the diagnostics) must read the newer one, not whichever comes first.
        var old = Run("default", "bitfit", 60, 70, 70.0).ToList();
        var newer = Run("default", "bitfit", 60, 80, 85.0, epochs: 30).Select(r => r with
        {
            Key = r.Key.Replace("/seed=42", "/seed=42/epochs=30"), Config = r.Config with { Epochs = 30 }, FinishedUtc = r.FinishedUtc.AddMinutes(5),
        }).ToList();
        var runs = RunTrials.FromRecords(old.Concat(newer));
        var run = Assert.Single(runs);
        Assert.Equal((85.0, 30), (run.Final!.Top1Last, run.Final.Epochs));
        Assert.All(run.Tuning, t => Assert.Equal(30, t.Config.Epochs)); // the tune trials of the newer grid only
        var a = BudgetAgreement.Of(runs, RunTrials.FromRecords(Run("reference", "bitfit", 60, 80, 85.0)));
        Assert.Equal((1, 1), (a.SameSelections, a.TestsWithin));
        Assert.True(Assert.Single(a.Pairs).SameSchedule);
    }

    /// <summary>Notebook 06 tunes its own grid for a pair on the same store as notebook 02 (full schedule, four lrs, four
    /// bottlenecks), and its final finishes later: the comparison and the diagnostics still read the final of the
    /// profile's own grid (it had read the playground's: dsprites-loc LoRA -1.3 against the reference on mini-hand).</summary>
    [Fact]
    public void A_final_of_another_grid_finished_later_does_not_stand_for_the_profiles_run()
    {
        var o = ProtocolOptions.For("default", "vtab1k", "natural");
        var start = new DateTime(2026, 12, 7, 12, 0, 0, DateTimeKind.Utc);
        IEnumerable<TrialRecord> RunOf(ProtocolOptions options, IReadOnlyList<SortedDictionary<string, string>> grid, double test, DateTime at)
        {
            var tune = Protocol.TuneConfigs("mnist", "lora", grid, options)
                .Select((c, i) => new TrialRecord { Key = c.Key, Config = c, Top1Last = 80 + i, Epochs = 2, FinishedUtc = at }).ToList();
            var final = Protocol.FinalConfig(tune[^1].Config, Protocol.PendingFinal("mnist", "lora", options, tune.Select(t => t.Key)).TuneGrid!);
            return tune.Append(new TrialRecord { Key = final.Key, Config = final, Top1Last = test, Epochs = 10, FinishedUtc = at.AddMinutes(1) });
        }
        var own = RunOf(o, Profiles.Get("default").Grid("lora"), 91.0, start).ToList();
        var playground = RunOf(o with { Lrs = new[] { 1e-3, 3e-3, 1e-2, 3e-2 }, Rung = null },
            new[] { "1", "8", "16", "32" }.Select(b => new SortedDictionary<string, string>(StringComparer.Ordinal) { ["lora_bottleneck"] = b }).ToList(),
            85.0, start.AddHours(1)).ToList();
        Assert.NotEqual(own[^1].Key, playground[^1].Key);

        var run = Assert.Single(RunTrials.FromRecords(own.Concat(playground)));
        Assert.Equal((own[^1].Key, 91.0), (run.Final!.Key, run.Final.Top1Last));
        Assert.Equal(own.Count - 1, run.Tuning.Count); // the profile's tune trials, not the playground's 16
        // Without the profile's own final the one finished last stands, as for a store of another build's profile.
        Assert.Equal(playground[^1].Key, Assert.Single(RunTrials.FromRecords(playground.Concat(own.Take(own.Count - 1)))).Final!.Key);
    }

    [Fact]
    public void A_missing_store_is_named()
    {
        var dir = Path.Combine(Path.GetTempPath(), "peft-no-such-store-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<DirectoryNotFoundException>(() => BudgetAgreement.OfStores(dir, dir));
        Assert.Contains(dir, e.Message);
    }

    [Theory]
    [InlineData(0, 0, 1.0)]
    [InlineData(5, 5, 1.0)]
    [InlineData(0, 10, 2.0 / 1024)]          // every discordant image one way: 2 * (1/2)^10
    [InlineData(8, 2, 2.0 * 56 / 1024)]      // 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10
    public void McNemar_is_the_exact_two_sided_binomial_tail(int onlyA, int onlyB, double p) =>
        Assert.Equal(p, BudgetAgreement.McNemarP(onlyA, onlyB), 12);

    /// <summary>From two stores whose finals saved their test logits: each pair counts the test images only one final got
    /// right; a 3-point gap made of 30 images one way is more than chance, a 1.5-point gap of 45 images against 60 is not
    /// (p 0.17), and the sentence says which. A final without its predictions file gets no paired p and fails nothing.</summary>
    [Fact]
    public void From_stores_the_gaps_are_tested_on_the_same_test_images()
    {
        using var tmp = new TempDir();
        string ours = Path.Combine(tmp.Path, "default"), reference = Path.Combine(tmp.Path, "reference");
        var labels = Enumerable.Range(0, 1000).Select(i => (long)(i % 10)).ToArray();
        // Which test images a final gets right: [from, to) of the 1000.
        void Write(string dir, string profile, string method, Func<int, bool> right, bool keepPredictions = true)
        {
            var store = new ResultsStore(dir);
            var records = Run(profile, method, 80, 90, 100.0 * Enumerable.Range(0, 1000).Count(right) / 1000).ToList();
            string? file = null;
            if (keepPredictions)
            {
                var logits = new float[1000 * 10];
                for (int i = 0; i < 1000; i++) logits[i * 10 + (int)((labels[i] + (right(i) ? 0 : 1)) % 10)] = 5;
                using var eval = new EvalResult(0, torch.tensor(logits).reshape(1000, 10), torch.tensor(labels));
                file = store.SavePredictions(records[2].Key, eval);
            }
            records[2] = records[2] with { Predictions = file };
            foreach (var r in records) store.Append(r);
        }
        Write(ours, "default", "bitfit", i => i < 900);             // 90.0
        Write(reference, "reference", "bitfit", i => i < 930);      // 93.0: 30 images only the reference gets right
        Write(ours, "default", "lora", i => i < 900 || i >= 985);   // 91.5: 15 of its own beyond the 900
        Write(reference, "reference", "lora", i => i < 870 || (i >= 900 && i < 960)); // 93.0: 30 of ours wrong, 60 more right
        Write(ours, "default", "ln", i => i < 800, keepPredictions: false);
        Write(reference, "reference", "ln", i => i < 900);

        var a = BudgetAgreement.OfStores(ours, reference);
        var bitfit = a.Pairs.Single(p => p.Method == "bitfit");
        Assert.Equal((0, 30), bitfit.Discordant);
        Assert.True(bitfit.PairedP < 1e-8);
        var lora = a.Pairs.Single(p => p.Method == "lora");
        Assert.Equal((30 + 15, 60), lora.Discordant);
        Assert.InRange(lora.PairedP!.Value, 0.171, 0.172);
        Assert.Null(a.Pairs.Single(p => p.Method == "ln").PairedP);
        Assert.Contains("Of the 3 gaps over 1 point, 1 of 2 are more than chance on the same test images (McNemar, p < 0.05): " +
            "the two finals differ, not just the test sample; 1 could be chance.", a.Sentence());
        Assert.Equal(new[] { false, true, false }, a.Table().Columns["paired p"].Cast<double?>().Select(x => x is null)); // bitfit, ln, lora
    }
}
