using PeftWorkbench.Data;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Successive halving (ProtocolOptions.Rung): every grid point trains the first epochs of the final's schedule,
/// the leader the whole of it; and a results store refuses trials recorded under another budget (budgets.json), since a
/// trial key names the profile, not its budget.</summary>
public class TuneBudgetTests
{
    static ProtocolOptions Rung1 => ProtocolTests.Tiny() with { Rung = 1 };

    sealed class Counting(ModelFactory inner)
    {
        public int Calls;
        public BuiltModel Build(TrialConfig c, int k) { Calls++; return inner(c, k); }
    }

    [Fact]
    public void TheProfilesTableSaysWhereTheRungIsAndTheBudgetLineDoesNotDependOnIt()
    {
        var d = Profiles.Default.Vtab1k();
        Assert.Equal((2, 6), (d.Rung, d.ForGroup("structured").Rung));
        foreach (var p in new[] { Profiles.Reference, Profiles.MiniFull, Profiles.Paper, Profiles.Smoke }) Assert.Null(p.Vtab1k().Rung);
        Assert.Null(Profiles.Default.ManyShotFor("natural").Rung); // many-shot trains every grid point in full
        // A rung trial's numbers are the first epochs of the full trial's, and its key says where it stopped.
        Assert.Equal((d with { Rung = null }).Budget, d.Budget);
        Assert.StartsWith($"tune {d.Train.Budget}; final {d.Train.Budget};", d.Budget);
        // No rung for a grid of one point, nor one at or past the schedule's end.
        Assert.Equal(((int?)null, (int?)2), (d.RungFor(1), d.RungFor(2)));
        Assert.Null((d with { Rung = 10 }).RungFor(2));
        Assert.Null((d with { TrainImages = 200 }).RungFor(2)); // a training subset (notebook 07) tunes its grid in full
        var keys = Protocol.TuneConfigs("mnist", "lora", null, d).Select(c => c.Key).ToList();
        Assert.All(keys, k => Assert.Contains("/seed=42/stop=2/lr=", k));
        Assert.DoesNotContain("stop=", Protocol.TuneConfigs("mnist", "lora", null, d with { Rung = null })[0].Key);
        Assert.DoesNotContain("stop=", Protocol.TuneConfigs("mnist", "lora", null, d with { Lrs = new[] { 1e-2 } })[0].Key);
    }

    /// <summary>Lr 1e-7 cannot move a model from its init in a few epochs; lr 1e-2 learns the toy task: the rung must
    /// pick what the full grid picks.</summary>
    static ProtocolOptions KnownAnswer(int? rung) => ProtocolTests.Tiny() with
    {
        Rung = rung, Lrs = new[] { 1e-7, 1e-2 }, TuneEvalEvery = 1,
        Train = ProtocolTests.Tiny().Train with { Epochs = 4, WarmupEpochs = 1, Stepping = PeftWorkbench.Training.ScheduleStepping.PerStep },
    };

    [Fact]
    public void TheRungSelectsWhatTheFullGridSelectsAndTheLeaderTrainsTheSameNumbersInFull()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 32);
        ModelFactory factory = new PeftFactory(TinyData.Config(), null).Build;
        var full = Protocol.Vtab1k(task, "full", null, factory, KnownAnswer(null), new ResultsStore(Temp.Dir()));
        var store = new ResultsStore(Temp.Dir());
        var halving = Protocol.Vtab1k(task, "full", null, factory, KnownAnswer(2), store);

        Assert.Equal(1e-2, full.Selected!.Config.Lr);
        Assert.Equal((1e-2, 2), (halving.Selected!.Config.Lr, halving.Selected.Config.Rung));
        Assert.All(halving.Tuning, t => Assert.Equal((2, 2), (t.Epochs, t.Config.Rung)));
        // The rung trial is the first two epochs of the full-length trial: same losses and val top-1 (same seed, same schedule).
        var fullSelected = full.Selected;
        SameCurve.Equal(fullSelected.LossCurve![..2], halving.Selected.LossCurve);
        Assert.Equal(fullSelected.EvalCurve![..2], halving.Selected.EvalCurve);
        // The leader's full run on train800 ("val") is the full grid's selected tune trial, number for number, and the
        // final (same configuration, same schedule) tests the same.
        var val = halving.Val!;
        Assert.Equal((halving.Selected.Config with { Phase = "val", TuneGrid = halving.Final.Config.TuneGrid }).Key, val.Key);
        Assert.Equal((4, (int?)2), (val.Epochs, val.Config.Rung));
        Assert.Equal(fullSelected.EvalCurve, val.EvalCurve);
        SameCurve.Equal(fullSelected.LossCurve, val.LossCurve);
        Assert.Equal((4, full.Final.Top1Last), (halving.Final.Epochs, halving.Final.Top1Last));
        Assert.NotEqual(full.Final.Key, halving.Final.Key); // chosen from other tune trials
        Assert.Equal(4, store.Records().Count);
        Assert.Equal(full.Selected.Key, full.Val!.Key); // without a rung the selected tune trial is the full run

        // The store serves the full run's val200 logits as the method's val predictions, not the rung's.
        var preds = PeftWorkbench.Analysis.Predictions.Load(store.Dir, "toy-3", "val")["full"];
        Assert.Equal(task.Val200.Count, preds.Count);
        Assert.Equal(Path.Combine(store.Dir, val.Predictions!), preds.Source);
        Assert.Equal(val.Top1Last!.Value, preds.Top1, 6);
        // The diagnostics read the full run's curve and val, from the run and from the store alike.
        // (notebook 07's regime reads a StudyRun through RunTrials.Of, under its own label)
        var asStudy = new StudyRun("toy-3", "full", Profiles.Smoke, KnownAnswer(2), store.Dir, halving.Tuning, halving.Selected, halving.Final, null) { Val = halving.Val };
        Assert.Equal(val.Key, PeftWorkbench.Findings.RunTrials.Of(asStudy, "toy-3 n=800").Val!.Key);
        foreach (var run in new[] { PeftWorkbench.Findings.Convergence.Of(store.Records()).Runs.Single(),
            PeftWorkbench.Findings.Convergence.Of(new[] { PeftWorkbench.Findings.RunTrials.Of(asStudy) }).Runs.Single() })
        {
            Assert.Equal((val.Top1Last, 2), (run.Val, run.TuneTrials));
            Assert.Equal(PeftWorkbench.Findings.Convergence.Top1Trend(val.EvalCurve!.Select(v => v!.Value).ToList()), run.Tune);
        }
    }

    [Fact]
    public void ARungRunAndAFullGridShareAStoreAndTheSensitivityCurveRefusesRungTrials()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        var store = new ResultsStore(Temp.Dir());
        var counting = new Counting(new PeftFactory(TinyData.Config(), null).Build);
        var halving = Protocol.Vtab1k(task, "full", null, counting.Build, Rung1, store);
        Assert.Equal(4, counting.Calls); // 2 rung trials, the leader's full run, the final
        var e = Assert.Throws<ArgumentException>(() => PeftWorkbench.Analysis.Sensitivity.FromTrials(halving.Tuning));
        Assert.Contains("stopped at the rung (epoch 1)", e.Message);
        Assert.Contains("fullGrid: true", e.Message);

        var fullGrid = Protocol.Vtab1k(task, "full", null, counting.Build, Rung1 with { Rung = null }, store); // same budget line
        Assert.Equal(7, counting.Calls); // its own 2 tune trials and final
        Assert.Equal(2, PeftWorkbench.Analysis.Sensitivity.FromTrials(fullGrid.Tuning).Count);
        Protocol.Vtab1k(task, "full", null, counting.Build, Rung1, store);
        Assert.Equal(7, counting.Calls); // read back
    }

    [Fact]
    public void AStoreRefusesAnotherBudgetBeforeAnyTrialRunsAndKeepsEachTaskApart()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        using var other = ToySuite.Load("toy-4", 8, perClass: 8);
        var store = new ResultsStore(Temp.Dir());
        var counting = new Counting(new PeftFactory(TinyData.Config(), null).Build);
        Protocol.Vtab1k(task, "full", null, counting.Build, Rung1, store);
        Assert.Equal(4, counting.Calls);
        var before = File.ReadAllText(Path.Combine(store.Dir, "trials.jsonl"));

        var longer = Rung1 with { Train = Rung1.Train with { Epochs = 4 } };
        var e = Assert.Throws<InvalidOperationException>(() => Protocol.Vtab1k(task, "full", null, counting.Build, longer, store));
        Assert.Contains(store.Dir, e.Message);
        Assert.Contains("smoke/vtab1k/toy-3", e.Message);
        Assert.Contains("its trials were trained with tune 3 epochs, final 3 epochs (all of it: tune 3 epochs", e.Message);
        Assert.Contains("now trains: tune 4 epochs", e.Message);
        Assert.Equal(4, counting.Calls);
        Assert.Equal(before, File.ReadAllText(Path.Combine(store.Dir, "trials.jsonl")));

        // The same budget reads its trials back; another task in the same store has a budget of its own.
        Protocol.Vtab1k(task, "full", null, counting.Build, Rung1, store);
        Assert.Equal(4, counting.Calls);
        Protocol.Vtab1k(other, "full", null, counting.Build, longer, store);
        Assert.Equal(8, counting.Calls);
    }

    [Fact]
    public void AStoreFromBeforeBudgetsIsJudgedByTheEpochsItsRecordsTrained()
    {
        static TrialRecord Done(string phase, int epochs) =>
            new TrialConfig { Task = "mnist", Method = "lora", Phase = phase, Lr = 1e-2, WeightDecay = 1e-4, Profile = "default" } is var c
                ? new TrialRecord { Key = c.Key, Config = c, Top1Last = 90, Epochs = epochs } : null!;
        var o = Profiles.Default.Vtab1k();

        var old = new ResultsStore(Temp.Dir());
        old.Append(Done("tune", 2)); // the default profile's tune trials trained 2 epochs before they trained as long as the final
        var e = Assert.Throws<InvalidOperationException>(() => old.CheckBudget(o, "mnist"));
        Assert.Contains("trained for 2 epochs", e.Message);
        Assert.False(File.Exists(Path.Combine(old.Dir, "budgets.json")));
        old.CheckBudget(o, "landcover"); // no trials of that task: nothing to judge

        var current = new ResultsStore(Temp.Dir());
        current.Append(Done("tune", 10));
        current.Append(Done("final", 10));
        current.CheckBudget(o, "mnist");
        Assert.Contains(o.Budget, File.ReadAllText(Path.Combine(current.Dir, "budgets.json")));
    }

    // What main wrote to budgets.json for these profiles before the val refit existed (the default's 5-epoch finals).
    const string OldDefault = "tune 2 epochs, warmup 1 from 1E-06, min lr 1E-05, schedule PerStep, batch 64, adamw decay TimmExemptions, augment None, " +
        "label smoothing 0, clip 0, fp32; final 5 epochs, warmup 1 from 1E-06, min lr 1E-05, schedule PerStep, batch 64, adamw decay TimmExemptions, " +
        "augment None, label smoothing 0, clip 0, fp32; final eval every 0; tie-break FewestParameters; linear probe FeatureCache; many-shot images all";
    const string MiniFull = "tune 20 epochs, warmup 2 from 1E-06, min lr 1E-05, schedule PerEpoch, batch 64, adamw decay TimmExemptions, augment None, " +
        "label smoothing 0, clip 0, fp32; final 20 epochs, warmup 2 from 1E-06, min lr 1E-05, schedule PerEpoch, batch 64, adamw decay TimmExemptions, " +
        "augment None, label smoothing 0, clip 0, fp32; final eval every 1; tie-break FewestParameters; linear probe FeatureCache; many-shot images all";

    [Fact]
    public void AStoreOfTheOldDefaultIsRefusedNamingWhatDiffersAndMiniFullStoresStillRead()
    {
        var store = new ResultsStore(Temp.Dir());
        var path = Path.Combine(store.Dir, "budgets.json");
        File.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["default/vtab1k/mnist"] = OldDefault, ["mini-full/vtab1k/mnist"] = MiniFull,
        }));
        var e = Assert.Throws<InvalidOperationException>(() => store.CheckBudget(Profiles.Default.Vtab1k(), "mnist"));
        Assert.Contains("final 5 epochs", e.Message);
        Assert.Contains("final 10 epochs", e.Message);
        Assert.Contains("tune 10 epochs", e.Message);
        store.CheckBudget(Profiles.MiniFull.Vtab1k(), "mnist"); // the reference store's budget line is unchanged
        Assert.Equal(MiniFull, Profiles.MiniFull.Vtab1k().Budget);
    }

    [Fact]
    public void ASweepPlansTheLeadersFullRunAfterTheRungTrialsAndSlurmRunsItAfterTheTuneArray()
    {
        var dir = Temp.Dir();
        var manifest = Sweep.Plan(dir, "toy", new[] { "toy-3" }, new[] { "linear" }, Rung1, TinyData.Config(), new DefaultTrialEnvironment());
        Assert.Equal(new[] { "tune", "tune", "val", "final" }, manifest.Trials.Select(t => t.Phase));
        Assert.Equal(new int?[] { 1, 1, null, null }, manifest.Trials.Select(t => t.Rung));
        Assert.Equal(Protocol.Pending("val", "toy-3", "linear", Rung1, manifest.Trials.Take(2).Select(t => t.Key)).Key, manifest.Trials[2].Key);
        var export = Sweep.ExportSlurm(manifest, Path.Combine(dir, "sweep.manifest.json"), Path.Combine(dir, "slurm"),
            new SlurmOptions { PeftCommand = new[] { "/bin/true" } });
        Assert.Equal((2, 2), (export.TuneTrials, export.FinalTrials));
        // No rung, or a grid of one point: no full run of the leader.
        Assert.Equal(new[] { "tune", "tune", "final" },
            Sweep.Plan(Temp.Dir(), "toy", new[] { "toy-3" }, new[] { "linear" }, ProtocolTests.Tiny(), TinyData.Config(), new DefaultTrialEnvironment()).Trials.Select(t => t.Phase));
        Assert.Equal(new[] { "tune", "final" },
            Sweep.Plan(Temp.Dir(), "toy", new[] { "toy-3" }, new[] { "linear" }, Rung1 with { Lrs = new[] { 1e-2 } }, TinyData.Config(), new DefaultTrialEnvironment()).Trials.Select(t => t.Phase));
    }

    [Fact]
    public void AnUnreadableBudgetsFileIsNamedAndNothingIsOverwritten()
    {
        var store = new ResultsStore(Temp.Dir());
        var path = Path.Combine(store.Dir, "budgets.json");
        File.WriteAllText(path, "[1, 2");
        var e = Assert.Throws<InvalidDataException>(() => store.CheckBudget(Profiles.Default.Vtab1k(), "mnist"));
        Assert.Contains(path, e.Message);
        Assert.Equal("[1, 2", File.ReadAllText(path));
    }

    [Fact]
    public void ASweepIsNotPlannedOverTrialsOfAnotherBudget()
    {
        var dir = Temp.Dir();
        var o = ProtocolOptions.Vtab1k("smoke");
        var c = new TrialConfig { Task = "toy-3", Method = "full", Lr = 1e-2, WeightDecay = 1e-4, Profile = "smoke" };
        new ResultsStore(dir).Append(new TrialRecord { Key = c.Key, Config = c, Top1Last = 50, Epochs = 7 });
        var e = Assert.Throws<InvalidOperationException>(() =>
            Sweep.Plan(dir, "toy", new[] { "toy-3" }, new[] { "full" }, o, TinyData.Config(), new DefaultTrialEnvironment()));
        Assert.Contains("trained for 7 epochs", e.Message);
        // A task with no old trials plans (and stamps its budget).
        Sweep.Plan(dir, "toy", new[] { "toy-4" }, new[] { "full" }, o, TinyData.Config(), new DefaultTrialEnvironment());
        Assert.Contains("smoke/vtab1k/toy-4", File.ReadAllText(Path.Combine(dir, "budgets.json")));
    }

    [Fact]
    public void StudyRunChecksTheBudgetBeforeReadingFinishedTrialsBack()
    {
        var store = Temp.Dir();
        StudyRun Go() => Study.Run("toy-3", "linear", "smoke", store: store, suite: "toy", checkpoint: "none", preset: "mini");
        using (Go()) { }
        var path = Path.Combine(store, "budgets.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("tune 1 epochs", "tune 9 epochs"));
        var e = Assert.Throws<InvalidOperationException>(() => Go());
        Assert.Contains("tune 9 epochs", e.Message);
    }
}
