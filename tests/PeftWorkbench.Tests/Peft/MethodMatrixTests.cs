using PeftWorkbench.Peft;
using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Peft;

using Peft = global::PeftWorkbench.Peft.Peft;

/// <summary>
/// The method matrix: every method of the study on a tiny ViT (16 px, patch 4, dim 32, depth 2, 2 heads).
/// </summary>
public class MethodMatrixTests
{
    internal static readonly VitConfig Tiny = new()
    {
        Name = "tiny-test", ImageSize = 16, PatchSize = 4, EmbedDim = 32, Depth = 2, NumHeads = 2, NumClasses = 5,
    };

    public static TheoryData<string> AllMethods()
    {
        var data = new TheoryData<string>();
        foreach (var m in MethodRegistry.All) data.Add(m.Id);
        return data;
    }

    /// <summary>Options that fit the tiny ViT (the study's adapter default of 64 exceeds its width of 32). A method not
    /// named here runs with its defaults, or where they do not fit, with the first point of its grid that does.</summary>
    internal static PeftOptions TinyOptions(string id) => id switch
    {
        "rand_h_adapter" => new HoulsbyOptions { Bottleneck = 8 },
        "lora_p_adapter" => new PfeifferOptions { Bottleneck = 8 },
        "adaptformer" => new AdaptFormerOptions { Bottleneck = 8, Scale = 0.2 },
        "convpass" => new ConvPassOptions { Bottleneck = 8, Scale = 1, XavierInit = true },
        "fact_tk" => new FactTkOptions { Dim = 8, Scale = 1 },
        "vpt_shallow" => new VptShallowOptions { NumPrompts = 3 },
        "vpt_deep" => new VptDeepOptions { NumPrompts = 3 },
        _ => FirstFitting(MethodRegistry.Get(id)),
    };

    static PeftOptions FirstFitting(PeftMethod method) =>
        new[] { method.Defaults() }.Concat(method.GridPoints().Select(p => MethodRegistry.Create(method.Id, p)))
            .First(o => { try { o.Validate(Tiny); return true; } catch (ArgumentException) { return false; } });

    static readonly Dictionary<long, Dictionary<string, Tensor>> pretrained = new();

    /// <summary>
    /// A fresh copy of the "pre-trained" tiny ViT for <paramref name="seed"/>. The weights are drawn once and
    /// cached: seeding the global generator is not reproducible while other test classes draw from it in
    /// parallel, and these tests need the very same backbone again (to load adapters onto).
    /// </summary>
    internal static VisionTransformer Backbone(long seed = 0)
    {
        Dictionary<string, Tensor>? weights;
        lock (pretrained)
        {
            if (!pretrained.TryGetValue(seed, out weights))
            {
                using var source = new VisionTransformer(Tiny, seed);
                weights = source.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope());
                pretrained[seed] = weights;
            }
        }
        var vit = new VisionTransformer(Tiny);
        using (torch.no_grad())
            foreach (var (name, p) in vit.named_parameters()) p.copy_(weights[name]);
        return vit;
    }

    static Tensor Images() => torch.randn(new long[] { 4, 3, 16, 16 }, generator: new Generator(11));
    static Tensor Labels() => torch.tensor(new long[] { 0, 1, 2, 3 });

    static Tensor Eval(nn.Module<Tensor, Tensor> m, Tensor x)
    {
        m.eval();
        using var _ = torch.no_grad();
        return m.forward(x);
    }

    /// <summary>Same shape and bit-identical values.</summary>
    static bool Same(Tensor a, Tensor b) => a.Equals(b);

    static Dictionary<string, Tensor> Snapshot(PeftModel m) =>
        m.NamedParameters().ToDictionary(p => p.Name, p => p.Param.detach().clone());

    /// <summary>One AdamW step at lr 1e-2 on a fixed batch; returns the tensors as they were before it.</summary>
    static Dictionary<string, Tensor> TrainOneStep(PeftModel model)
    {
        var before = Snapshot(model);
        var trainable = model.TrainableParameters().Select(p => p.Param).ToList();
        using var opt = torch.optim.AdamW(trainable, lr: 1e-2);
        model.train();
        torch.manual_seed(5);
        using (var scope = torch.NewDisposeScope())
        {
            var loss = torch.nn.functional.cross_entropy(model.forward(Images()), Labels());
            opt.zero_grad();
            loss.backward();
            opt.step();
        }
        model.eval();
        return before;
    }

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void AttachLeavesTheOutputUnchangedExactlyWhenZeroInitialised(string id)
    {
        using var vit = Backbone();
        var x = Images();
        var pre = Eval(vit, x);
        var model = Peft.Attach(vit, TinyOptions(id), seed: 1);
        var post = Eval(model, x);
        if (model.Method.IdentityAtInit) Assert.True(Same(pre, post), $"{id} changed the output at attach");
        else Assert.False(Same(pre, post), $"{id} is not zero-initialised but left the output unchanged");
    }

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void OneStepChangesOnlyTheMethodsTensorsAndTheHead(string id)
    {
        using var vit = Backbone();
        var model = Peft.Attach(vit, TinyOptions(id), seed: 1);
        var trainable = model.TrainableParameters().Select(p => p.Name).ToHashSet();
        Assert.Contains("head.weight", trainable);

        // Frozen tensors get no gradient at all: backward must not compute them.
        model.train();
        using (var scope = torch.NewDisposeScope())
            torch.nn.functional.cross_entropy(model.forward(Images()), Labels()).backward();
        foreach (var (name, p) in model.NamedParameters())
        {
            if (trainable.Contains(name)) Assert.True(p.grad is not null, $"{id}: trainable {name} got no gradient");
            else
            {
                Assert.False(p.requires_grad, $"{id}: frozen {name} requires grad");
                Assert.True(p.grad is null, $"{id}: frozen {name} has a gradient");
            }
        }
        foreach (var (_, p) in model.NamedParameters()) p.grad = null;

        var before = TrainOneStep(model);
        var changed = model.NamedParameters().Where(p => !Same(p.Param, before[p.Name])).Select(p => p.Name).ToHashSet();
        Assert.Contains("head.weight", changed);
        Assert.Empty(changed.Except(trainable));
        if (id != "linear") Assert.Contains(changed, n => !n.StartsWith("head."));
        else Assert.Equal(new[] { "head.bias", "head.weight" }, trainable.OrderBy(n => n, StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void StrengthZeroIsThePretrainedModelAndOneTheTunedModel(string id)
    {
        using var vit = Backbone();
        var model = Peft.Attach(vit, TinyOptions(id), seed: 1);
        TrainOneStep(model);
        var x = Images();
        var tuned = Eval(model, x);

        // The pre-trained backbone with the (trained) head: Strength never scales the head.
        using var reference = Backbone();
        using (torch.no_grad())
        {
            var head = (Linear)reference.head;
            head.weight.copy_(((Linear)model.model.head).weight);
            head.bias!.copy_(((Linear)model.model.head).bias!);
        }
        var pretrained = Eval(reference, x);

        model.Strength = 0;
        Assert.True(Same(pretrained, Eval(model, x)), $"{id}: Strength 0 differs from the pre-trained model");
        model.Strength = 0.5;
        var half = Eval(model, x);
        model.Strength = 1;
        Assert.True(Same(tuned, Eval(model, x)), $"{id}: Strength 1 differs from the tuned model");
        if (id != "linear")
        {
            Assert.False(Same(tuned, pretrained), $"{id}: one step changed nothing");
            Assert.False(Same(half, tuned));
            Assert.False(Same(half, pretrained));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Strength = 1.5);
    }

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void MergeMatchesTheUnmergedOutputAndUnmergeRestoresTheBackboneBitForBit(string id)
    {
        using var vit = Backbone();
        var model = Peft.Attach(vit, TinyOptions(id), seed: 1);
        TrainOneStep(model);
        var x = Images();
        if (!model.CanMerge)
        {
            var e = Assert.Throws<NotSupportedException>(() => model.Merge());
            Assert.Contains(id, e.Message);
            return;
        }
        foreach (var strength in new[] { 1.0, 0.5 })
        {
            model.Strength = strength;
            var unmerged = Eval(model, x);
            var before = Snapshot(model);
            model.Merge();
            Assert.True(model.IsMerged);
            var merged = Eval(model, x);
            Assert.True(torch.allclose(unmerged, merged, rtol: 1e-5, atol: 1e-5),
                $"{id} at strength {strength}: merged differs by {(unmerged - merged).abs().max().item<float>()}");
            Assert.Throws<InvalidOperationException>(() => model.Strength = 1);
            // Every merged wrapper refuses a second merge on its own too (it would fold the update in twice).
            foreach (var m in model.modules().OfType<IMergeable>())
                Assert.Throws<InvalidOperationException>(() => m.Merge(strength));
            model.Unmerge();
            foreach (var (name, p) in model.NamedParameters())
                Assert.True(Same(p, before[name]), $"{id}: {name} not restored bit for bit");
            Assert.True(Same(unmerged, Eval(model, x)));
        }
    }

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void SaveThenLoadOntoAFreshBackboneReproducesTheOutputs(string id)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"peft-adapter-{id}-{Guid.NewGuid():N}");
        try
        {
            using var vit = Backbone();
            var model = Peft.Attach(vit, TinyOptions(id), seed: 1);
            TrainOneStep(model);
            model.Strength = 1;
            var x = Images();
            var expected = Eval(model, x);
            model.SaveAdapter(dir);

            var file = PeftWorkbench.Checkpoints.SafetensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors"));
            Assert.Equal(model.TrainableParameters().Select(p => p.Name).OrderBy(n => n, StringComparer.Ordinal), file.Keys.OrderBy(n => n, StringComparer.Ordinal));
            // The same tensors as adapter_model.bin (a torch.save zip, for tools that expect a pickle).
            using (var bin = PeftWorkbench.Checkpoints.TorchCheckpoint.Open(Path.Combine(dir, AdapterConfig.PickleWeightsName)))
            {
                Assert.Equal(file.Keys.Count(), bin.StateDict().Count);
                foreach (var (name, r) in bin.StateDict().OrderBy(kv => kv.Key, StringComparer.Ordinal).Zip(file.Keys.OrderBy(n => n, StringComparer.Ordinal), (kv, k) => (k, kv)))
                {
                    Assert.Equal(name, r.Key);
                    using var a = bin.Read(r.Value, r.Key);
                    using var b = file.Read(name);
                    Assert.True(a.allclose(b, rtol: 0, atol: 0), $"{id}: adapter_model.bin's {name} differs from the safetensors");
                }
            }
            var config = AdapterConfig.Read(dir);
            Assert.Equal(id, config.Method);
            Assert.Equal(Tiny.NumClasses, config.NumClasses);
            Assert.Equal(Workbench.Version, config.LibraryVersion);
            Assert.Equal(model.TrainableParameterCountExcludingHead, config.TrainableParamsExcludingHead);

            using var fresh = Backbone();
            var loaded = PeftModel.LoadAdapter(dir, fresh);
            Assert.Equal(model.Options, loaded.Options);
            Assert.True(Same(expected, Eval(loaded, x)), $"{id}: loaded adapter gives other outputs");
            // Strength 0 still reaches the pre-trained model after loading (the snapshot is the fresh backbone's).
            loaded.Strength = 0;
            using var plain = Backbone();
            using (torch.no_grad())
            {
                ((Linear)plain.head).weight.copy_(((Linear)loaded.model.head).weight);
                ((Linear)plain.head).bias!.copy_(((Linear)loaded.model.head).bias!);
            }
            Assert.True(Same(Eval(plain, x), Eval(loaded, x)), $"{id}: Strength 0 after loading is not the pre-trained model");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void LoadingOntoAWrongBackboneOrIntoAnotherMethodFailsClearly(string id)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"peft-adapter-{id}-{Guid.NewGuid():N}");
        try
        {
            using var vit = Backbone();
            Peft.Attach(vit, TinyOptions(id), seed: 1).SaveAdapter(dir);

            using var otherWeights = Backbone(seed: 99);
            var e = Assert.Throws<InvalidDataException>(() => PeftModel.LoadAdapter(dir, otherWeights));
            Assert.Contains("weights", e.Message);
            Assert.Contains("sha256:", e.Message);
            Assert.DoesNotContain(otherWeights.modules(), m => m is IPeftWrapper);

            using var otherShape = new VisionTransformer(Tiny with { Depth = 3 }, 0);
            e = Assert.Throws<InvalidDataException>(() => PeftModel.LoadAdapter(dir, otherShape));
            Assert.Contains("depth 2 (adapter) vs 3 (backbone)", e.Message);

            using var fresh = Backbone();
            string other = id == "lora" ? "ssf" : "lora";
            var wrong = Peft.Attach(fresh, TinyOptions(other));
            e = Assert.Throws<InvalidDataException>(() => wrong.LoadAdapterWeights(dir));
            Assert.Contains($"'{id}' adapter", e.Message);
            Assert.Contains($"'{other}'", e.Message);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void DetachGivesBackThePlainViT(string id)
    {
        using var vit = Backbone();
        var names = vit.named_parameters().Select(p => p.name).ToList();
        var x = Images();
        var pre = Eval(vit, x);
        var model = Peft.Attach(vit, TinyOptions(id), seed: 1);
        Assert.Throws<InvalidOperationException>(() => Peft.Attach(vit, new LoraOptions()));
        Assert.Same(vit, model.Detach());
        Assert.Equal(names, vit.named_parameters().Select(p => p.name).ToList());
        Assert.All(vit.parameters(), p => Assert.True(p.requires_grad));
        Assert.DoesNotContain(vit.modules(), m => m is IPeftWrapper);
        Assert.True(Same(pre, Eval(vit, x)));
    }

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void BackboneKeysKeepTheirNamesAfterAttach(string id)
    {
        using var vit = Backbone();
        var names = vit.named_parameters().Select(p => p.name).ToHashSet();
        var model = Peft.Attach(vit, TinyOptions(id), seed: 1);
        var after = model.NamedParameters().Select(p => p.Name).ToHashSet();
        Assert.Subset(after, names);
    }

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void UnknownKeysAreRejectedNamingTheAllowedOnes(string id)
    {
        var e = Assert.Throws<ArgumentException>(() => MethodRegistry.Create(id, new Dictionary<string, string> { ["lora_rank"] = "8" }, Tiny));
        Assert.Contains("'lora_rank'", e.Message);
        Assert.Contains("Allowed:", e.Message);
        foreach (var o in MethodRegistry.Get(id).Options) Assert.Contains(o.Key, e.Message);
    }

    [Fact]
    public void TheMatrixRunsEveryRegisteredMethodIncludingOneAddedOutsideTheLibrary()
    {
        var ids = ((System.Collections.IEnumerable)AllMethods()).Cast<object[]>().Select(row => (string)row[0]).ToList();
        Assert.Equal(MethodRegistry.All.Select(m => m.Id), ids);
        Assert.Contains("toy_gain", ids);
        Assert.Equal(MethodRegistry.BuiltIn.Count + 1, ids.Count);
        var e = Assert.Throws<ArgumentException>(() => MethodRegistry.Register(ToyGainOptions.Info));
        Assert.Contains("'toy_gain' is already taken", e.Message);
    }

    [Fact]
    public void SummaryPrintsHfPeftsLine()
    {
        using var vit = Backbone();
        var model = Peft.Attach(vit, new LoraOptions { Rank = 4 });
        var w = new StringWriter();
        model.Summary(w);
        // LoRA on qkv: 2 blocks x (32 x 4 + 4 x 96) = 1024, plus the head 32 x 5 + 5 = 165.
        long all = model.ParameterCount;
        Assert.Equal($"trainable params: 1,189 || all params: {all:N0} || trainable%: {(100.0 * 1189 / all).ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}",
            w.ToString().TrimEnd());
        Assert.Equal(1024, model.TrainableParameterCountExcludingHead);
    }

    [Fact]
    public void TheTwoWaysToAttachGiveTheSameOptions()
    {
        using var a = Backbone();
        using var b = Backbone();
        var byRecord = Peft.Attach(a, new LoraOptions { Rank = 8 }, seed: 3);
        var byStudyKey = Peft.Attach(b, "lora", new Dictionary<string, string> { ["lora_bottleneck"] = "8" }, seed: 3);
        Assert.Equal(byRecord.Options, byStudyKey.Options);
        Assert.Equal(byRecord.TrainableParameters().Select(p => (p.Name, p.Param.numel())), byStudyKey.TrainableParameters().Select(p => (p.Name, p.Param.numel())));
        Assert.Equal("lora(lora_bottleneck=8, lora_alpha=null, lora_dropout=0.1)", byStudyKey.Options.ToString());
    }

    [Fact]
    public void BadOptionsNameTheOptionAndItsAllowedRange()
    {
        using var vit = Backbone();
        var e = Assert.Throws<ArgumentException>(() => Peft.Attach(vit, new LoraOptions { Rank = 0 }));
        Assert.Contains("LoraOptions.Rank (lora_bottleneck) = 0", e.Message);
        Assert.Contains("allowed: 1 to 32", e.Message);

        e = Assert.Throws<ArgumentException>(() => Peft.Attach(vit, "rand_h_adapter", new Dictionary<string, string> { ["adapter_bottleneck"] = "8", ["adapter_scaler"] = "-0.1" }));
        Assert.Contains("HoulsbyOptions.Scale (adapter_scaler) = -0.1", e.Message);
        Assert.Contains("allowed: greater than 0", e.Message);

        foreach (var o in new PeftOptions[] { new ConvPassOptions { Scale = -1 }, new RepAdapterOptions { Scale = -1 }, new FactTtOptions { Scale = -1 }, new AdaptFormerOptions { Bottleneck = 8, Scale = -1 } })
            Assert.Contains("(", Assert.Throws<ArgumentException>(() => o.Validate(Tiny)).Message);

        e = Assert.Throws<ArgumentException>(() => Peft.Attach(vit, new VptDeepOptions { NumPrompts = 69 }));
        Assert.Contains("VptDeepOptions.NumPrompts (vpt_num) = 69 does not fit", e.Message);
        Assert.Contains("allowed: 1 to 68", e.Message);

        e = Assert.Throws<ArgumentException>(() => Peft.Attach(vit, new RepAdapterOptions { Bottleneck = 9 }));
        Assert.Contains("RepAdapterOptions.Groups (repadapter_group) = 2", e.Message);

        e = Assert.Throws<ArgumentException>(() => Peft.Attach(vit, "lora", new Dictionary<string, string> { ["lora_bottleneck"] = "eight" }));
        Assert.Contains("cannot read 'eight' as a whole number", e.Message);

        e = Assert.Throws<ArgumentException>(() => Peft.Attach(vit, "houlsby_adapter"));
        Assert.Contains("Unknown PEFT method 'houlsby_adapter'", e.Message);

        // Nothing was attached by the failed calls.
        Assert.DoesNotContain(vit.modules(), m => m is IPeftWrapper);
    }

    [Fact]
    public void VptShallowOffersBothBehaviours()
    {
        using var a = Backbone();
        using var b = Backbone();
        var x = Images();
        var travel = Peft.Attach(a, new VptShallowOptions { NumPrompts = 3 }, seed: 2);
        var dropped = Peft.Attach(b, MethodRegistry.Create("vpt_shallow", new Dictionary<string, string> { ["vpt_num"] = "3", ["vpt_shallow_mode"] = "dropped_after_block0" }), seed: 2);
        Assert.Equal(VptShallowMode.ThroughAllBlocks, ((VptShallowOptions)travel.Options).Mode);
        Assert.Equal(travel.TrainableParameterCountExcludingHead, dropped.TrainableParameterCountExcludingHead);
        // Same prompts, different paths: the outputs differ, and features keep 1 + N tokens either way.
        Assert.False(Same(Eval(travel, x), Eval(dropped, x)));
        using var _ = torch.no_grad();
        Assert.Equal(new long[] { 4, 17, 32 }, travel.ForwardFeatures(x).shape);
        Assert.Equal(new long[] { 4, 17, 32 }, dropped.ForwardFeatures(x).shape);
    }

    [Fact]
    public void LoraAlphaScalesTheUpdate()
    {
        using var a = Backbone();
        var model = Peft.Attach(a, new LoraOptions { Rank = 4, Alpha = 8 }, seed: 1);
        Assert.Equal(2.0, ((LoraOptions)model.Options).Scaling);
        TrainOneStep(model);
        var x = Images();
        var y = Eval(model, x);
        model.Merge();
        Assert.True(torch.allclose(y, Eval(model, x), rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void TrainingWhileMergedOrAtPartialStrengthWithTunedBackboneTensorsIsRefused()
    {
        using var vit = Backbone();
        var model = Peft.Attach(vit, new BitFitOptions());
        model.Strength = 0.5;
        model.train();
        Assert.Throws<InvalidOperationException>(() => model.forward(Images()));
        model.Strength = 1;
        model.Merge();
        Assert.Throws<InvalidOperationException>(() => model.forward(Images()));
    }

    [Theory]
    [InlineData("bitfit")]
    [InlineData("lora")]
    [InlineData("ssf")]
    [InlineData("fact_tk")]
    [InlineData("vpt_deep")]
    public void MovingTheModelAfterAttachKeepsStrengthMergeAndDetachWorking(string id)
    {
        using var vit = Backbone();
        var model = Peft.Attach(vit, TinyOptions(id), seed: 1);
        TrainOneStep(model);
        model.to(ScalarType.Float64); // replaces every Parameter object, as .to(cuda) does
        var x = Images().to(ScalarType.Float64);
        var tuned = Eval(model, x);
        Assert.Equal(ScalarType.Float64, tuned.dtype);

        using var reference = Backbone();
        using (torch.no_grad())
        {
            ((Linear)reference.head).weight.copy_(((Linear)model.model.head).weight);
            ((Linear)reference.head).bias!.copy_(((Linear)model.model.head).bias!);
        }
        reference.to(ScalarType.Float64);
        model.Strength = 0;
        Assert.True(torch.allclose(Eval(reference, x), Eval(model, x), rtol: 1e-12, atol: 1e-12));
        model.Strength = 1;
        if (model.CanMerge)
        {
            model.Merge();
            Assert.True(torch.allclose(tuned, Eval(model, x), rtol: 1e-9, atol: 1e-9));
            model.Unmerge();
        }
        var back = model.Detach();
        Assert.Equal(reference.named_parameters().Select(p => p.name), back.named_parameters().Select(p => p.name));
        Assert.All(back.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype));
        Assert.Equal(Eval(reference, x).shape, Eval(back, x).shape);
    }
}
