using PeftWorkbench.Data;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Tune trials may train shorter than the final (ProtocolOptions.TuneEpochs), and a results store refuses
/// trials recorded under another budget (budgets.json), since a trial key names the profile, not its budget.</summary>
public class TuneBudgetTests
{
    static ProtocolOptions ShortTune => ProtocolTests.Tiny() with { TuneEpochs = 1 };

    sealed class Counting(ModelFactory inner)
    {
        public int Calls;
        public BuiltModel Build(TrialConfig c, int k) { Calls++; return inner(c, k); }
    }

    [Fact]
    public void TheProfilesTableSaysHowLongATuneTrialTrains()
    {
        var d = Profiles.Default.Vtab1k();
        Assert.Equal((10, 1), (d.TrainFor("tune").Epochs, d.TrainFor("tune").WarmupEpochs));
        Assert.Equal(d.TrainFor("final").Budget, d.TrainFor("tune").Budget);
        var shortTune = ShortTune;
        Assert.True(shortTune.RefitsSelected);
        Assert.Equal(shortTune.TrainFor("final").Budget, shortTune.TrainFor("val").Budget); // the val refit trains like the final
        foreach (var p in Profiles.All)
        {
            Assert.Equal(p.Epochs, p.Vtab1k().TrainFor("tune").Epochs);
            Assert.False(p.Vtab1k().RefitsSelected); // tune trials already train like the final
        }
        // Many-shot keeps its own recipe for both phases.
        Assert.Equal(Profiles.Default.ManyShot.Epochs, Profiles.Default.ManyShotFor("natural").TrainFor("tune").Epochs);
        // The warmup never outlasts a short tune.
        var o = ProtocolTests.Tiny() with { TuneEpochs = 1, Train = ProtocolTests.Tiny().Train with { Epochs = 4, WarmupEpochs = 2 } };
        Assert.Equal((1, 1), (o.TrainFor("tune").Epochs, o.TrainFor("tune").WarmupEpochs));
    }

    [Fact]
    public void TuneTrialsTrainForTuneEpochsAndTheFinalForItsOwn()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        var r = Protocol.Vtab1k(task, "full", null, new PeftFactory(TinyData.Config(), null).Build, ShortTune, new ResultsStore(Temp.Dir()));
        Assert.All(r.Tuning, t => Assert.Equal(1, t.Epochs));
        Assert.Equal(3, r.Final.Epochs);
        Assert.Equal((3, "val"), (r.Val!.Epochs, r.Val.Config.Phase));
    }

    /// <summary>Lr 1e-7 cannot move a model from its init in a few epochs; lr 1e-2 learns the toy task: the short
    /// tune (successive halving's first rung) must pick what tuning at the final's length picks.</summary>
    static ProtocolOptions KnownAnswer(int? tuneEpochs) => ProtocolTests.Tiny() with
    {
        TuneEpochs = tuneEpochs, Lrs = new[] { 1e-7, 1e-2 },
        Train = ProtocolTests.Tiny().Train with { Epochs = 4, WarmupEpochs = 1, Stepping = PeftWorkbench.Training.ScheduleStepping.PerStep },
    };

    [Fact]
    public void AShortTuneSelectsWhatTheFullGridSelectsAndTheWinnerAloneTrainsLongOnTrain800()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 32);
        ModelFactory factory = new PeftFactory(TinyData.Config(), null).Build;
        var full = Protocol.Vtab1k(task, "full", null, factory, KnownAnswer(null), new ResultsStore(Temp.Dir()));
        var store = new ResultsStore(Temp.Dir());
        var halving = Protocol.Vtab1k(task, "full", null, factory, KnownAnswer(2), store);

        Assert.Equal(1e-2, full.Selected!.Config.Lr);
        Assert.Equal(full.Selected.Key, halving.Selected!.Key);
        Assert.Equal((full.Final.Key, 1e-2), (halving.Final.Key, halving.Final.Config.Lr));
        Assert.All(halving.Tuning, t => Assert.Equal(2, t.Epochs));
        // The val refit: the selected configuration on the final's budget, trained on train800 and scored on val200.
        var val = halving.Val!;
        Assert.Equal((halving.Selected.Config with { Phase = "val", TuneGrid = halving.Final.Config.TuneGrid }).Key, val.Key);
        Assert.Equal((1e-2, 4, 2), (val.Config.Lr, val.Epochs, halving.Selected.Epochs));
        Assert.Equal(4, store.Records().Count);
        // Without a refit (tune as long as the final) the selected tune trial is already trained like the final.
        Assert.Equal(full.Selected.Key, full.Val!.Key);

        // What the store serves as a method's val predictions is the refit's val200 logits, not the 2-epoch tune's.
        var preds = PeftWorkbench.Analysis.Predictions.Load(store.Dir, "toy-3", "val")["full"];
        Assert.Equal(task.Val200.Count, preds.Count);
        Assert.Equal(Path.Combine(store.Dir, val.Predictions!), preds.Source);
        Assert.Equal(val.Top1Last!.Value, preds.Top1, 6);
    }

    [Fact]
    public void AStoreRefusesAnotherBudgetBeforeAnyTrialRunsAndKeepsEachTaskApart()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        using var other = ToySuite.Load("toy-4", 8, perClass: 8);
        var store = new ResultsStore(Temp.Dir());
        var counting = new Counting(new PeftFactory(TinyData.Config(), null).Build);
        Protocol.Vtab1k(task, "full", null, counting.Build, ShortTune, store);
        Assert.Equal(4, counting.Calls); // 2 tune trials, the val refit, the final
        var before = File.ReadAllText(Path.Combine(store.Dir, "trials.jsonl"));

        var longer = ShortTune with { TuneEpochs = 2 };
        var e = Assert.Throws<InvalidOperationException>(() => Protocol.Vtab1k(task, "full", null, counting.Build, longer, store));
        Assert.Contains(store.Dir, e.Message);
        Assert.Contains("smoke/vtab1k/toy-3", e.Message);
        Assert.Contains("its trials were trained with tune 1 epochs (all of it: tune 1 epochs", e.Message);
        Assert.Contains("now trains: tune 2 epochs", e.Message);
        Assert.Equal(4, counting.Calls);
        Assert.Equal(before, File.ReadAllText(Path.Combine(store.Dir, "trials.jsonl")));

        // The same budget reads its trials back; another task in the same store has a budget of its own.
        Protocol.Vtab1k(task, "full", null, counting.Build, ShortTune, store);
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
    public void ASweepPlansTheValRefitAfterTheTuneTrialsAndSlurmRunsItAfterTheTuneArray()
    {
        var dir = Temp.Dir();
        var manifest = Sweep.Plan(dir, "toy", new[] { "toy-3" }, new[] { "linear" }, ShortTune, TinyData.Config(), new DefaultTrialEnvironment());
        Assert.Equal(new[] { "tune", "tune", "val", "final" }, manifest.Trials.Select(t => t.Phase));
        Assert.Equal(Protocol.Pending("val", "toy-3", "linear", ShortTune, manifest.Trials.Take(2).Select(t => t.Key)).Key, manifest.Trials[2].Key);
        var export = Sweep.ExportSlurm(manifest, Path.Combine(dir, "sweep.manifest.json"), Path.Combine(dir, "slurm"),
            new SlurmOptions { PeftCommand = new[] { "/bin/true" } });
        Assert.Equal((2, 2), (export.TuneTrials, export.FinalTrials));
        // Tune trials as long as the final: no refit.
        Assert.Equal(new[] { "tune", "tune", "final" },
            Sweep.Plan(Temp.Dir(), "toy", new[] { "toy-3" }, new[] { "linear" }, ProtocolTests.Tiny(), TinyData.Config(), new DefaultTrialEnvironment()).Trials.Select(t => t.Phase));
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
