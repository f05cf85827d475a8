using PeftWorkbench.Data;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Profile.LongerMethods: methods measured to need a longer schedule train another profile's epochs (default: the
/// reference's), the whole grid, under keys that say so; every other trial of a store stays as it was.</summary>
public class LongerMethodsTests
{
    [Fact]
    public void DefaultGivesTheSlowMethodsTheReferencesEpochsAndOnlyTheirKeysChange()
    {
        var natural = ProtocolOptions.For("default", "vtab1k", "natural");
        var structured = ProtocolOptions.For("default", "vtab1k", "structured");
        foreach (var m in new[] { "linear", "bitfit", "ln", "difffit", "vpt_shallow", "vpt_deep", "lora_p_adapter" })
            Assert.Equal(((int?)30, (int?)60), (natural.EpochsFor(m), structured.EpochsFor(m)));
        foreach (var m in new[] { "full", "lora", "rand_h_adapter", "ssf", "fact_tt" })
            Assert.Equal(((int?)null, (int?)null), (natural.EpochsFor(m), structured.EpochsFor(m)));
        // No other profile has longer methods; many-shot never does.
        foreach (var p in new[] { "smoke", "reference", "mini-full", "paper" })
            Assert.Null(ProtocolOptions.For(p, "vtab1k", "natural").EpochsFor("bitfit"));
        Assert.Null(ProtocolOptions.For("default", "manyshot", "natural").EpochsFor("bitfit"));

        // BitFit: the whole grid at 30 epochs, warmup 3 (the reference's), named in the key; LoRA keeps its rung and its keys.
        var bitfit = Protocol.TuneConfigs("landcover", "bitfit", null, natural);
        Assert.All(bitfit, c => Assert.Equal(((int?)30, (int?)null), (c.Epochs, c.Rung)));
        Assert.All(bitfit, c => Assert.Contains("/seed=42/epochs=30/lr=", c.Key));
        Assert.Equal((30, 3), (natural.TrainFor(bitfit[0]).Epochs, natural.TrainFor(bitfit[0]).WarmupEpochs));
        Assert.Equal((60, 6), (structured.TrainFor(Protocol.TuneConfigs("dsprites-loc", "bitfit", null, structured)[0]).Epochs,
            structured.TrainFor(Protocol.TuneConfigs("dsprites-loc", "bitfit", null, structured)[0]).WarmupEpochs));
        var lora = Protocol.TuneConfigs("landcover", "lora", null, natural);
        Assert.All(lora, c => Assert.Equal("vtab1k/landcover/lora/tune/default/seed=42/stop=2/lr=" + (c.Lr == 1e-3 ? "0.001" : "0.01") + ",wd=0.0001,dp=0.1", c.Key));
        Assert.Equal(natural.Train, natural.TrainFor(lora[0]));
        // The budget line (budgets.json) is the profile's: a store from before keeps its other methods' trials.
        Assert.Equal(Profiles.Default.Vtab1k().Budget, natural.Budget);
        Assert.Contains("linear, bitfit, ln, difffit, vpt_shallow, vpt_deep, lora_p_adapter: reference's (30; structured 60)", Profiles.MarkdownTable());
    }

    [Fact]
    public void ALongerMethodTrainsItsOwnScheduleInFullAndAStoreKeepsTheOtherMethodsTrials()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        ModelFactory factory = new PeftFactory(TinyData.Config(), null).Build;
        var store = new ResultsStore(Temp.Dir());
        var o = ProtocolTests.Tiny() with { Rung = 1, Train = ProtocolTests.Tiny().Train with { Epochs = 2, WarmupEpochs = 1 } };
        var lora = Protocol.Vtab1k(task, "lora", null, factory, o, store);
        int before = store.Records().Count;
        Assert.Equal(4, before); // two rung trials, the leader's full run, the final

        var longer = o with { EpochsByMethod = new Dictionary<string, int> { ["full"] = 4 } };
        var full = Protocol.Vtab1k(task, "full", null, factory, longer, store);
        Assert.All(full.Tuning, t => Assert.Equal((4, (int?)4, (int?)null), (t.Epochs, t.Config.Epochs, t.Config.Rung)));
        Assert.Equal((4, (int?)4), (full.Final.Epochs, full.Final.Config.Epochs));
        Assert.Equal(full.Selected!.Key, full.Val!.Key); // no rung: the selected tune trial is the full run

        // The same numbers as a profile whose own schedule is 4 epochs (warmup 2): the key only names it.
        var direct = Protocol.Vtab1k(task, "full", null, factory, o with { Rung = null, Train = o.Train with { Epochs = 4, WarmupEpochs = 2 } }, new ResultsStore(Temp.Dir()));
        Assert.Equal(direct.Tuning.Count, full.Tuning.Count);
        foreach (var (d, f) in direct.Tuning.Zip(full.Tuning)) SameCurve.Equal(d.LossCurve, f.LossCurve);
        Assert.Equal(direct.Final.Top1Last, full.Final.Top1Last);

        // Read back from disk: the keys and epochs stand, LoRA's trials are reused, nothing retrains.
        var reread = new ResultsStore(store.Dir);
        Assert.Contains(reread.Records(), r => r.Key == full.Final.Key && r.Config.Epochs == 4);
        var counting = 0;
        ModelFactory count = (c, k) => { counting++; return factory(c, k); };
        Protocol.Vtab1k(task, "lora", null, count, longer, reread);
        Protocol.Vtab1k(task, "full", null, count, longer, reread);
        Assert.Equal(0, counting);
        Assert.Equal(lora.Final.Key, Protocol.Vtab1k(task, "lora", null, count, longer, reread).Final.Key);
    }
}
