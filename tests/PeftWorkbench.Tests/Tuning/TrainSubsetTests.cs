using System.Text.Json;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>VTAB-1K at a smaller training-set size (notebook 07): the subset is seeded, deterministic and nested; the
/// final trains on it plus val200; the size is in every key and store scope except at 800, where keys stay as they were;
/// a size beyond the split is refused before anything is trained or recorded.</summary>
public class TrainSubsetTests
{
    [Fact]
    public void At800TheKeysScopesAndRecordsStayAsTheyWere()
    {
        var tune = new TrialConfig { Task = "mnist", Method = "lora", Lr = 1e-3, WeightDecay = 1e-4, DropPath = 0.1, Hp = new(StringComparer.Ordinal) { ["r"] = "8" } };
        Assert.Equal("vtab1k/mnist/lora/tune/default/seed=42/lr=0.001,wd=0.0001,dp=0.1,r=8", tune.Key);
        Assert.Equal("vtab1k/mnist/lora/final/default/seed=42/grid=abc", (tune with { Phase = "final", TuneGrid = "abc" }).Key);
        Assert.DoesNotContain("TrainImages", JsonSerializer.Serialize(tune)); // records written today read the same

        var whole = ProtocolOptions.For("default", trainImages: 800);
        Assert.Null(whole.TrainImages);
        Assert.Equal(ProtocolOptions.For("default").Budget, whole.Budget);
        Assert.Equal("default/vtab1k/mnist", TrialIdentity.Scope(whole, "mnist"));
        var keys = Protocol.TuneConfigs("mnist", "lora", null, whole).Select(c => c.Key).ToList();
        Assert.Equal(Protocol.TuneConfigs("mnist", "lora", null, ProtocolOptions.For("default")).Select(c => c.Key), keys);
        // default tunes to a rung (the key says where it stopped); a full grid keeps the keys of stores written before rungs.
        Assert.Equal("vtab1k/mnist/lora/tune/default/seed=42/stop=2/lr=0.001,wd=0.0001,dp=0.1", keys[0]);
        Assert.Equal("vtab1k/mnist/lora/tune/default/seed=42/lr=0.001,wd=0.0001,dp=0.1", Protocol.TuneConfigs("mnist", "lora", null, whole with { Rung = null })[0].Key);

        var small = ProtocolOptions.For("default", trainImages: 200);
        Assert.Equal("default/vtab1k/mnist/n=200", TrialIdentity.Scope(small, "mnist"));
        Assert.Equal("vtab1k/mnist/lora/tune/default/seed=42/n=200/lr=0.001,wd=0.0001,dp=0.1", Protocol.TuneConfigs("mnist", "lora", null, small)[0].Key);
        var smallKeys = Protocol.TuneConfigs("mnist", "lora", null, small).Select(c => c.Key).ToList();
        Assert.Equal("vtab1k/mnist/lora/final/default/seed=42/n=200/grid=" + Protocol.GridDigest(smallKeys), Protocol.FinalKey("mnist", "lora", small, smallKeys));
        Assert.Throws<ArgumentException>(() => ProtocolOptions.For("default", "manyshot", trainImages: 200));
        Assert.Throws<ArgumentException>(() => ProtocolOptions.For("default", trainImages: 0));
    }

    [Fact]
    public void TheSubsetIsSeededDeterministicAndNested()
    {
        var fifty = TrainSubset.Indices(800, 50);
        Assert.Equal(fifty, TrainSubset.Indices(800, 50));
        Assert.Equal(50, fifty.Distinct().Count());
        Assert.All(fifty, i => Assert.InRange(i, 0, 799));
        Assert.NotEqual(Enumerable.Range(0, 50).Select(i => (long)i), fifty); // a permutation, not the first 50
        var hundred = TrainSubset.Indices(800, 100);
        Assert.Equal(fifty, hundred.Take(50));                                // nested: the 50 are among the 100
        Assert.Equal(hundred, TrainSubset.Indices(800, 400).Take(100));
    }

    [Fact]
    public void ApplyCutsTrain800AndBuildsTheFinalSetFromTheSubsetAndVal200()
    {
        var whole = ToySuite.Load("toy-3", 8);
        var train = whole.Train800.Images.clone();
        var val = whole.Val200.Images.clone();
        int valCount = (int)whole.Val200.Count, testCount = (int)whole.Test.Count;
        using var task = TrainSubset.Apply(whole, 10);
        Assert.Equal(10, task.Train800.Count);
        Assert.Equal(10 + valCount, task.Train800Val200.Count);
        Assert.Equal((valCount, testCount), ((int)task.Val200.Count, (int)task.Test.Count));
        using var idx = TorchSharp.torch.tensor(TrainSubset.Indices(24, 10));
        Assert.True(task.Train800.Images.eq(train.index_select(0, idx)).all().item<bool>());
        Assert.True(task.Train800Val200.Images.narrow(0, 10, valCount).eq(val).all().item<bool>());
        Assert.True(task.Train800Val200.Images.narrow(0, 0, 10).eq(task.Train800.Images).all().item<bool>());
        train.Dispose(); val.Dispose();
    }

    [Fact]
    public void ASizeBeyondTheSplitIsRefusedBeforeTheStoreIsTouched()
    {
        using var dir = new TempDir();
        var store = Path.Combine(dir.Path, "store");
        var e = Assert.Throws<ArgumentException>(() => Study.Run("toy-3", "linear", "smoke", store: store, suite: "toy", checkpoint: "none", trainImages: 25));
        Assert.Contains("'toy-3'", e.Message);
        Assert.Contains("size 25", e.Message);
        Assert.Contains("holds 24 images", e.Message);
        e = Assert.Throws<ArgumentException>(() => Study.Run("mnist", "linear", "smoke", store: store, checkpoint: "none", trainImages: 801));
        Assert.Contains("'mnist'", e.Message);
        Assert.Contains("holds 800 images", e.Message);
        Assert.False(Directory.Exists(store) && Directory.EnumerateFileSystemEntries(store).Any(), "nothing may be recorded for a refused size");
        e = Assert.Throws<ArgumentException>(() => Study.RunAll(new[] { "toy-3" }, new[] { "linear" }, "smoke", store: store, suite: "toy", checkpoint: "none", workers: 2, trainImages: 30));
        Assert.Contains("holds 24 images", e.Message);
        Assert.False(Directory.Exists(store) && Directory.EnumerateFileSystemEntries(store).Any(), "nor by the worker path");
    }

    [Fact]
    public void SizesShareAStoreWithoutMixingAndReadBack()
    {
        using var dir = new TempDir();
        var store = Path.Combine(dir.Path, "store");
        StudyRun Go(int? n) => Study.Run("toy-3", "linear", "smoke", store: store, suite: "toy", checkpoint: "none", trainImages: n);
        DateTime small, whole;
        using (var a = Go(12)) { small = a.Final.FinishedUtc; Assert.Contains("/n=12/", a.Final.Key); Assert.Equal(12, a.Final.Config.TrainImages); }
        // The whole split's scope is new, not a store from before identity.json: its n=12 trials are no reason to say so.
        var notices = new List<string>();
        new ResultsStore(store) { Notices = notices.Add }.CheckIdentity("smoke/vtab1k/toy-3",
            TrialIdentity.Of(new RunSetup("toy", "smoke", "vtab1k", PeftWorkbench.Vit.VitConfig.Preset("mini")), "toy-3"));
        Assert.Empty(notices);
        using (var b = Go(null)) { whole = b.Final.FinishedUtc; Assert.DoesNotContain("/n=", b.Final.Key); }
        using (var c = Go(12)) Assert.Equal(small, c.Final.FinishedUtc);
        using (var d = Go(800)) Assert.Equal(whole, d.Final.FinishedUtc); // 800 is the whole split: the same trials
        var identity = File.ReadAllText(Path.Combine(store, "identity.json"));
        Assert.Contains("\"smoke/vtab1k/toy-3\"", identity);
        Assert.Contains("\"smoke/vtab1k/toy-3/n=12\"", identity);
        Assert.Contains("\"smoke/vtab1k/toy-3/n=12\"", File.ReadAllText(Path.Combine(store, "budgets.json")));
        // The analyses of the study's protocol (agreement, ranks, ensembles) read only whole-train800 finals.
        Assert.Equal(whole, Assert.Single(PeftWorkbench.Analysis.Predictions.StoreFinals(store)).FinishedUtc);
    }
}
