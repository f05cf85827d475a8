using PeftWorkbench.Data;
using PeftWorkbench.Peft;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Each protocol row of the profile table does what it says (paper = the study's code).</summary>
public class ProfileTests
{
    static TrialConfig Trial(string method, string profile, params string[] hp) => new()
    {
        Task = "t", Method = method, Profile = profile, Lr = 1e-3, WeightDecay = 1e-4, DropPath = 0.1, Hp = TrialConfig.ParseHp(hp), Seed = 3,
    };

    [Fact]
    public void PaperScheduleIsTimmsEpochByEpoch()
    {
        // timm CosineLRScheduler(t_initial=10, warmup_t=2, warmup_lr_init=1e-6, lr_min=1e-5), scheduler.step(epoch)
        // at the end of each epoch: epoch e >= 1 runs at lr(e-1). Hand-computed: lr(0) = 1e-6, lr(1) = 1e-6 + (1e-3 - 1e-6)/2,
        // lr(t >= 2) = 1e-5 + (1e-3 - 1e-5)(1 + cos(pi t / 10))/2.
        double[] timm = { 1e-6, 1e-6, 0.0005005, 0.0009054634122, 0.0007959536999, 0.0006579634122, 0.000505, 0.0003520365878, 0.0002140463001, 0.0001045365878 };
        using var vit = TinyData.Vit();
        using var train = TinyData.Set(32);
        var o = Profiles.Paper.Train with { Epochs = 10, WarmupEpochs = 2, Lr = 1e-3, BatchSize = 16, Device = torch.CPU };
        var history = Trainer.Fit(vit, train, null, o);
        Assert.Equal(10, history.Epochs.Count);
        for (int e = 0; e < 10; e++) Assert.Equal(timm[e], history.Epochs[e].Lr, 1e-12);
        // Our per-epoch stepping runs epoch e at lr(e).
        var ours = Trainer.Fit(TinyData.Vit(), train, null, o with { Stepping = ScheduleStepping.PerEpoch });
        Assert.Equal(timm[2], ours.Epochs[1].Lr, 1e-12);
    }

    [Fact]
    public void WeightDecayGroupsFollowTheProfile()
    {
        using var vit = TinyData.Vit();
        using var model = PeftWorkbench.Peft.Peft.Attach(vit, "bitfit");
        var paper = WeightDecayGroups.Split(model, Profiles.Paper.WeightDecay);
        var def = WeightDecayGroups.Split(model, Profiles.Default.WeightDecay);
        // The study: plain AdamW on every tuned tensor, biases included. Default: timm's exemptions (biases never decay).
        Assert.Empty(paper.NoDecay);
        Assert.Contains(paper.Decay, p => p.Name.EndsWith("qkv.bias"));
        Assert.DoesNotContain(def.Decay, p => p.Name.EndsWith(".bias"));
        Assert.Equal(paper.Decay.Count, def.Decay.Count + def.NoDecay.Count);
    }

    [Fact]
    public void DropLastGivesTheStudysStepCounts()
    {
        Assert.Equal((15, 12), (Trainer.StepsPerEpoch(1000, Profiles.Paper.Train), Trainer.StepsPerEpoch(800, Profiles.Paper.Train)));
        Assert.Equal((16, 13), (Trainer.StepsPerEpoch(1000, Profiles.MiniFull.Train), Trainer.StepsPerEpoch(800, Profiles.MiniFull.Train)));
        Assert.Equal((32, 25), (Trainer.StepsPerEpoch(1000, Profiles.Default.Train), Trainer.StepsPerEpoch(800, Profiles.Default.Train))); // batch 32
        using var vit = TinyData.Vit();
        using var train = TinyData.Set(40);
        var o = new TrainOptions { Epochs = 2, BatchSize = 16, Device = torch.CPU };
        Assert.Equal(4, Trainer.Fit(vit, train, null, o with { DropLast = true }).Steps);
        Assert.Equal(6, Trainer.Fit(TinyData.Vit(), train, null, o).Steps);
    }

    [Fact]
    public void HeadInitIsADefaultLinearUnderPaper()
    {
        var config = TinyData.Config(100) with { EmbedDim = 64, NumHeads = 2 };
        using var built = new PeftFactory(config, null).Build(Trial("linear", "paper"), 100);
        var head = (Linear)((PeftModel)built.Model).model.head;
        double bound = 1 / Math.Sqrt(64);
        using var w = head.weight!.detach();
        using var b = head.bias!.detach();
        // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both: max near the bound, std bound/sqrt(3).
        Assert.InRange(w.abs().max().item<float>(), 0.97 * bound, bound);
        Assert.InRange(w.std().item<float>(), 0.95 * bound / Math.Sqrt(3), 1.05 * bound / Math.Sqrt(3));
        Assert.InRange(b.abs().max().item<float>(), 0.8 * bound, bound);
        // The other choice: timm's truncated normal 0.02 and a zero bias.
        using var vit = new VisionTransformer(config, seed: 1);
        PeftFactory.InitHead(vit, HeadInit.TruncNormal, 1);
        var timm = (Linear)vit.head;
        Assert.InRange(timm.weight!.std().item<float>(), 0.017, 0.021);
        Assert.Equal(0f, timm.bias!.abs().max().item<float>());
    }

    [Fact]
    public void VptShallowVariantsCarryTheirPromptsAsFarAsTheySay()
    {
        // 3 blocks, 4 patches + class token = 5 tokens, 2 prompts.
        var config = TinyData.Config() with { Depth = 3 };
        int[] Tokens(string profile, params string[] hp)
        {
            using var built = new PeftFactory(config, null).Build(Trial("vpt_shallow", profile, hp.Prepend("vpt_num=2").ToArray()), 3);
            var seen = new int[3];
            var vit = ((PeftModel)built.Model).model;
            var attn = vit.named_modules().Where(m => m.name.EndsWith(".attn")).Select(m => (nn.Module<Tensor, Tensor>)m.module).ToList();
            Assert.Equal(3, attn.Count);
            for (int i = 0; i < 3; i++)
            {
                int block = i;
                attn[i].register_forward_hook((m, input, output) => { seen[block] = (int)input.shape[1]; return output; });
            }
            built.Model.eval();
            using var _ = built.Model.call(torch.zeros(2, 3, 8, 8));
            return seen;
        }
        Assert.Equal(new[] { 7, 5, 5 }, Tokens("paper"));                 // the study's: dropped after block 0
        Assert.Equal(new[] { 7, 7, 7 }, Tokens("default"));               // the original VPT: through all blocks
        Assert.Equal(new[] { 7, 7, 7 }, Tokens("paper", "vpt_shallow_mode=through_all_blocks")); // both selectable
    }

    [Theory]
    [InlineData("rand_h_adapter", 1)]
    [InlineData("lora_p_adapter", 2)]
    [InlineData("adaptformer", 2)]
    [InlineData("convpass", 1)]
    public void AdaptersDrawTheirOwnDropPathMasks(string method, int branch)
    {
        var config = TinyData.Config() with { DropPathRate = 0.5 };
        List<float[]> Masks(string masks)
        {
            var bottleneck = (method == "convpass" ? "convpass" : "adapter") + "_bottleneck=4";
            using var built = new PeftFactory(config, null).Build(Trial(method, "paper", "drop_path_masks=" + masks, bottleneck) with { DropPath = 0.5 }, 3);
            // Zero-initialised adapters add exactly 0 at first; random weights make every mask visible as output / input.
            using (torch.no_grad()) foreach (var (name, p) in built.Model.named_parameters()) if (p.requires_grad && !name.Contains("head")) p.normal_(0, 0.5);
            var seen = new List<float[]>();
            var block = (Block)((PeftModel)built.Model).model.blocks[0];
            var slot = branch == 1 ? block.drop_path1 : block.drop_path2;
            var dropPath = Assert.IsType<DropPath>(slot is IPeftWrapper w ? w.Unwrap() : slot);
            dropPath.register_forward_hook((m, input, output) =>
            {
                seen.Add((output[.., 0, 0] / input[.., 0, 0]).detach().data<float>().ToArray());
                return output;
            });
            built.Model.train();
            torch.manual_seed(5);
            using var _ = built.Model.call(torch.randn(64, 3, 8, 8));
            return seen;
        }
        var own = Masks("independent");
        Assert.Equal(2, own.Count);          // branch and adapter (or branch, then the sum) each drop with a mask of their own
        Assert.NotEqual(own[0], own[1]);
        Assert.All(own.SelectMany(m => m), v => Assert.True(v == 0 || Math.Abs(v - 2) < 1e-4)); // keep 0.5: 0 or 1/0.5
        Assert.Single(Masks("shared"));     // one mask over branch + adapter
    }

    [Fact]
    public void TheReadmeProfilesTableIsTheProfileTable()
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "README.md")) || !Directory.Exists(Path.Combine(dir, "src"))) dir = Path.GetDirectoryName(dir)!;
        var readme = File.ReadAllText(Path.Combine(dir, "README.md")).Replace("\r\n", "\n");
        var table = Profiles.MarkdownTable().Replace("\r\n", "\n");
        Assert.True(readme.Contains(table), "README.md's profiles table differs from Profiles.MarkdownTable(); paste this:\n" + table);
    }

    [Fact]
    public void ManyShotLoadsTheFullTrainingSetWithASeededDisjointValidationSplit()
    {
        var options = ProtocolOptions.ManyShot("default", "natural");
        using var task = Study.LoadManyShot(Suite.Mini, "fashion-mnist", options);
        Assert.Equal(10_000, task.Train800Val200.Count);                  // retrain on all of it
        Assert.Equal((9_000L, 1_000L), (task.Train800.Count, task.Val200.Count)); // the study's 10 % above 1,000 images
        // Disjoint: every training image is in exactly one part (images as exact pixel signatures).
        static HashSet<double> Rows(ImageSet s)
        {
            using var w = torch.linspace(1, 2, 3 * 32 * 32, dtype: ScalarType.Float64);
            using var sig = s.Images.reshape(s.Count, -1).to(ScalarType.Float64).matmul(w);
            return sig.data<double>().ToHashSet();
        }
        var fit = Rows(task.Train800);
        var val = Rows(task.Val200);
        Assert.Empty(fit.Intersect(val));
        Assert.True(Rows(task.Train800Val200).SetEquals(fit.Union(val)));
        // Seeded: the same split again.
        using var again = Study.LoadManyShot(Suite.Mini, "fashion-mnist", options);
        Assert.True(val.SetEquals(Rows(again.Val200)));
        Assert.Equal(ImageAugment.CropFlip, options.Train.Augment);
        Assert.Throws<ArgumentException>(() => Study.LoadManyShot(Suite.Mini, "mnist", options));
    }

    [Fact]
    public void ManyShotTrainImagesCapIsASeededSubsetOfTheFullSet()
    {
        static HashSet<double> Rows(ImageSet s)
        {
            using var w = torch.linspace(1, 2, 3 * 32 * 32, dtype: ScalarType.Float64);
            using var sig = s.Images.reshape(s.Count, -1).to(ScalarType.Float64).matmul(w);
            return sig.data<double>().ToHashSet();
        }
        var smoke = ProtocolOptions.ManyShot("smoke", "natural");
        Assert.Equal(1000, smoke.ManyShotTrainImages);
        Assert.All(new[] { "default", "mini-full", "paper" }, p => Assert.Null(ProtocolOptions.ManyShot(p).ManyShotTrainImages)); // the whole set
        using var capped = Study.LoadManyShot(Suite.Mini, "fashion-mnist", smoke);
        Assert.Equal(1000, capped.Train800Val200.Count);
        Assert.Equal((800L, 200L), (capped.Train800.Count, capped.Val200.Count)); // the share of 1,000 images: 20 %
        Assert.Equal(2000, capped.Test.Count);                                     // the test set stays whole
        using var full = Suite.Mini.LoadSplit("fashion-mnist", Suite.ManyShotSplit);
        Assert.True(Rows(capped.Train800Val200).IsSubsetOf(Rows(full)));
        using var again = Study.LoadManyShot(Suite.Mini, "fashion-mnist", smoke);
        Assert.True(Rows(capped.Train800Val200).SetEquals(Rows(again.Train800Val200)));
        using var other = Study.LoadManyShot(Suite.Mini, "fashion-mnist", smoke with { Train = smoke.Train with { Seed = 7 } });
        Assert.False(Rows(capped.Train800Val200).SetEquals(Rows(other.Train800Val200)));
        Assert.Throws<ArgumentException>(() => Study.LoadManyShot(Suite.Mini, "fashion-mnist", smoke with { ManyShotTrainImages = 1 }));
    }

    [Fact]
    public void VtabEpochsFollowTheTaskGroupOfTheProfile()
    {
        (int, int, int?) Budget(string profile, string group) { var t = ProtocolOptions.For(profile, "vtab1k", group).Train; return (t.Epochs, t.WarmupEpochs, ProtocolOptions.For(profile, "vtab1k", group).Rung); }
        // default: structured tasks train 3x (their methods had not settled in 10 epochs); reference doubles that again.
        Assert.Equal((10, 1, (int?)2), Budget("default", "natural"));
        Assert.Equal((10, 1, (int?)2), Budget("default", "specialized"));
        Assert.Equal((30, 3, (int?)6), Budget("default", "structured"));
        Assert.Equal((30, 3, (int?)null), Budget("reference", "natural"));
        Assert.Equal((60, 6, (int?)null), Budget("reference", "structured"));
        foreach (var p in new[] { "smoke", "mini-full", "paper" }) Assert.Equal(Budget(p, "natural"), Budget(p, "structured"));
        // The rung scales with the group's epochs (above); many-shot options do not read the VTAB-1K scale.
        Assert.Equal(ProtocolOptions.ManyShot("default", "structured").Train.Epochs, ProtocolOptions.ManyShot("default", "structured").ForGroup("structured").Train.Epochs);
    }

    [Fact]
    public void ASweepPlanRecordsEachTasksGroupBudgetAsItsTrialsWillTrainIt()
    {
        var dir = Temp.Dir();
        Sweep.Plan(dir, "mini", new[] { "mnist", "dsprites-loc" }, new[] { "linear" }, ProtocolOptions.Vtab1k("default"),
            PeftWorkbench.Vit.VitConfig.Preset("mini"), Study.Environment, "shipped:mini");
        var budgets = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(Path.Combine(dir, "budgets.json")))!;
        Assert.StartsWith("tune 10 epochs, warmup 1", budgets["default/vtab1k/mnist"]);
        Assert.StartsWith("tune 30 epochs, warmup 3", budgets["default/vtab1k/dsprites-loc"]);
        // A worker or Study.Run resolves the same options per task; natural-task options on the structured task are refused.
        var store = new ResultsStore(dir);
        store.CheckBudget(ProtocolOptions.For("default", "vtab1k", "structured"), "dsprites-loc");
        Assert.Throws<InvalidOperationException>(() => store.CheckBudget(ProtocolOptions.For("default", "vtab1k", "natural"), "dsprites-loc"));
    }

    [Fact]
    public void ManyShotSweepsPlanTheStudysRecipePerTaskKind()
    {
        var m = Sweep.Plan(Temp.Dir(), "mini", new[] { "fashion-mnist", "clevr-count" }, new[] { "linear" }, ProtocolOptions.ManyShot("paper"),
            PeftWorkbench.Vit.VitConfig.Preset("mini"), Study.Environment, "shipped:mini");
        var tune = m.Trials.Where(t => t.Phase == "tune").ToList();
        Assert.All(m.Trials, t => Assert.Equal("manyshot", t.Protocol));
        // CIFAR's recipe: lr {5e-4, 1e-3} x wd {1e-4, 1e-3} x drop path {0, 0.1, 0.2}; Clevr's: wd 1e-4, drop path 0.
        Assert.Equal(12, tune.Count(t => t.Task == "fashion-mnist"));
        Assert.Equal(new[] { (5e-4, 1e-4, 0.0), (1e-3, 1e-4, 0.0) }, tune.Where(t => t.Task == "clevr-count").Select(t => (t.Lr, t.WeightDecay, t.DropPath)));
        Assert.Equal((4, ImageAugment.CropFlip), (ProtocolOptions.ManyShot("paper", "natural").Train.WarmupEpochs, ProtocolOptions.ManyShot("paper", "natural").Train.Augment));
        Assert.Equal((5, ImageAugment.CropFlipVFlip), (ProtocolOptions.ManyShot("paper", "specialized").Train.WarmupEpochs, ProtocolOptions.ManyShot("paper", "specialized").Train.Augment));
        Assert.Equal(40, ProtocolOptions.ManyShot("paper", "structured").Train.Epochs);
    }

    [Fact]
    public void ManyShotAugmentationIsSeededAndKeepsTheShape()
    {
        using var x = torch.arange(4 * 3 * 16 * 16, dtype: ScalarType.Float32).reshape(4, 3, 16, 16);
        Tensor Run(ulong seed) { using var g = new Generator(seed); return Augment.Apply(x, ImageAugment.CropFlip, g); }
        using var a = Run(1);
        using var b = Run(1);
        using var c = Run(2);
        Assert.Equal(x.shape, a.shape);
        Assert.True(a.allclose(b, 0, 0));
        Assert.False(a.allclose(c, 0, 0));
        Assert.False(a.allclose(x, 0, 0));
        using var g0 = new Generator(1);
        Assert.Same(x, Augment.Apply(x, ImageAugment.None, g0));
    }
}
