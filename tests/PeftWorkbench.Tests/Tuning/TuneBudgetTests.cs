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
        Assert.Equal((2, 1), (d.TrainFor("tune").Epochs, d.TrainFor("tune").WarmupEpochs));
        Assert.Equal((5, 1), (d.TrainFor("final").Epochs, d.TrainFor("final").WarmupEpochs));
        foreach (var p in new[] { Profiles.Paper, Profiles.MiniFull, Profiles.Smoke })
            Assert.Equal(p.Epochs, p.Vtab1k().TrainFor("tune").Epochs);
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
    }

    [Fact]
    public void AStoreRefusesAnotherBudgetBeforeAnyTrialRunsAndKeepsEachTaskApart()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        using var other = ToySuite.Load("toy-4", 8, perClass: 8);
        var store = new ResultsStore(Temp.Dir());
        var counting = new Counting(new PeftFactory(TinyData.Config(), null).Build);
        Protocol.Vtab1k(task, "full", null, counting.Build, ShortTune, store);
        Assert.Equal(3, counting.Calls);
        var before = File.ReadAllText(Path.Combine(store.Dir, "trials.jsonl"));

        var longer = ShortTune with { TuneEpochs = 2 };
        var e = Assert.Throws<InvalidOperationException>(() => Protocol.Vtab1k(task, "full", null, counting.Build, longer, store));
        Assert.Contains(store.Dir, e.Message);
        Assert.Contains("smoke/vtab1k/toy-3", e.Message);
        Assert.Contains("its trials were trained with tune 1 epochs (all of it: tune 1 epochs", e.Message);
        Assert.Contains("now trains: tune 2 epochs", e.Message);
        Assert.Equal(3, counting.Calls);
        Assert.Equal(before, File.ReadAllText(Path.Combine(store.Dir, "trials.jsonl")));

        // The same budget reads its trials back; another task in the same store has a budget of its own.
        Protocol.Vtab1k(task, "full", null, counting.Build, ShortTune, store);
        Assert.Equal(3, counting.Calls);
        Protocol.Vtab1k(other, "full", null, counting.Build, longer, store);
        Assert.Equal(6, counting.Calls);
    }

    [Fact]
    public void AStoreFromBeforeBudgetsIsJudgedByTheEpochsItsRecordsTrained()
    {
        static TrialRecord Done(string phase, int epochs) =>
            new TrialConfig { Task = "mnist", Method = "lora", Phase = phase, Lr = 1e-2, WeightDecay = 1e-4, Profile = "default" } is var c
                ? new TrialRecord { Key = c.Key, Config = c, Top1Last = 90, Epochs = epochs } : null!;
        var o = Profiles.Default.Vtab1k();

        var old = new ResultsStore(Temp.Dir());
        old.Append(Done("tune", 5)); // the default profile's tune trials trained 5 epochs before they trained 2
        var e = Assert.Throws<InvalidOperationException>(() => old.CheckBudget(o, "mnist"));
        Assert.Contains("trained for 5 epochs", e.Message);
        Assert.False(File.Exists(Path.Combine(old.Dir, "budgets.json")));
        old.CheckBudget(o, "landcover"); // no trials of that task: nothing to judge

        var current = new ResultsStore(Temp.Dir());
        current.Append(Done("tune", 2));
        current.Append(Done("final", 5));
        current.CheckBudget(o, "mnist");
        Assert.Contains(o.Budget, File.ReadAllText(Path.Combine(current.Dir, "budgets.json")));
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
