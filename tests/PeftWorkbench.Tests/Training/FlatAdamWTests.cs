using PeftWorkbench.Tests.Peft;
using PeftWorkbench.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Training;

using Peft = global::PeftWorkbench.Peft.Peft;

/// <summary>FlatAdamW against TorchSharp's per-tensor AdamW, both built the way the trainer builds them.</summary>
public class FlatAdamWTests
{
    static readonly TrainOptions Options = new() { Lr = 3e-3, WeightDecay = 0.05 };

    /// <summary>LoRA on the tiny ViT: a frozen backbone, both weight-decay groups non-empty.</summary>
    static nn.Module<Tensor, Tensor> LoraModel() => Peft.Attach(MethodMatrixTests.Backbone(), MethodMatrixTests.TinyOptions("lora"), seed: 1);

    static (optim.Optimizer Opt, List<(string Name, Parameter Param)> Trainable) Build(nn.Module<Tensor, Tensor> model, bool flat)
    {
        var (decay, noDecay) = WeightDecayGroups.Split(model);
        Assert.NotEmpty(decay); Assert.NotEmpty(noDecay);
        var opt = Trainer.MakeOptimizer(Options with { FlatAdamW = flat }, decay.Select(p => p.Param), noDecay.Select(p => p.Param));
        return (opt, decay.Concat(noDecay).ToList());
    }

    /// <summary>100 steps on fixed random batches, the lr changing every step as a schedule would.</summary>
    static Dictionary<string, Tensor> Train(nn.Module<Tensor, Tensor> model, optim.Optimizer opt, int steps = 100)
    {
        var gen = new Generator(5);
        torch.manual_seed(7); // LoRA's dropout draws from the global generator
        model.train();
        for (int s = 0; s < steps; s++)
        {
            using var scope = torch.NewDisposeScope();
            foreach (var g in opt.ParamGroups) g.LearningRate = Options.Lr * (1 + Math.Cos(Math.PI * s / steps)) / 2 + 1e-5;
            var x = torch.randn(new long[] { 8, 3, 16, 16 }, generator: gen);
            var y = torch.randint(0, 5, new long[] { 8 }, generator: gen);
            opt.zero_grad();
            nn.functional.cross_entropy(model.forward(x), y).backward();
            opt.step();
        }
        return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
    }

    [Fact]
    public void FlatEqualsPerTensorOver100StepsWithFrozenParametersAndTwoDecayGroups()
    {
        using var a = LoraModel();
        using var b = LoraModel();
        var start = a.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var (perTensor, _) = Build(a, flat: false);
        // Small chunks, so chunk edges fall inside tensors (the trainer's 1M-element chunks hold this whole model).
        var chunk = FlatAdamW.ChunkElements;
        FlatAdamW.ChunkElements = 1000;
        var (flat, trainable) = Build(b, flat: true);
        FlatAdamW.ChunkElements = chunk;
        var frozen = a.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.NotEmpty(frozen);

        var expected = Train(a, perTensor);
        var actual = Train(b, flat);
        double worst = 0;
        foreach (var (name, t) in expected)
        {
            worst = Math.Max(worst, (t - actual[name]).abs().max().item<float>());
            if (frozen.Contains(name)) Assert.True(actual[name].Equals(start[name]), $"frozen {name} moved");
            else Assert.False(actual[name].Equals(start[name]), $"trainable {name} did not move");
        }
        Assert.True(worst <= 1e-6, $"flat and per-tensor AdamW differ by {worst:g3} after 100 steps");

        // The optimizer state agrees too, and is float32.
        var states = ((OptimizerHelper)perTensor).state_dict().State.Cast<AdamW.State>().ToList();
        var fl = (FlatAdamW)flat;
        for (int i = 0; i < trainable.Count; i++)
        {
            var (step, m, v) = fl.StateOf(trainable[i].Param);
            Assert.Equal(states[i].step, step);
            Assert.Equal(ScalarType.Float32, m.dtype); Assert.Equal(ScalarType.Float32, v.dtype);
            Assert.True((m - states[i].exp_avg).abs().max().item<float>() <= 1e-6, $"exp_avg of {trainable[i].Name}");
            Assert.True((v - states[i].exp_avg_sq).abs().max().item<float>() <= 1e-6, $"exp_avg_sq of {trainable[i].Name}");
        }
        // While training, the parameters are views into the group buffers; afterwards each owns its storage again.
        Assert.Contains(trainable, p => p.Param.storage_offset() > 0);
        perTensor.Dispose(); flat.Dispose();
        Assert.All(trainable, p => Assert.Equal(0, p.Param.storage_offset()));
        Assert.All(trainable, p => Assert.True(p.Param.Equals(actual[p.Name]), $"{p.Name} changed when the buffer was released"));
    }

    sealed class WithUnused : nn.Module<Tensor, Tensor>
    {
        public Linear fc = nn.Linear(4, 3);
        public Parameter unused_weight = nn.Parameter(torch.ones(2, 2));
        public WithUnused() : base("WithUnused") { RegisterComponents(); }
        public override Tensor forward(Tensor x) => fc.forward(x);
    }

    [Fact]
    public void AParameterWithoutGradientIsSkippedAsTorchSharpSkipsIt()
    {
        torch.manual_seed(3);
        using var a = new WithUnused();
        using var b = new WithUnused();
        b.load_state_dict(a.state_dict());
        var (perTensor, _) = Build(a, flat: false);
        var (flat, _) = Build(b, flat: true);
        var expected = Train4(a, perTensor);
        var actual = Train4(b, flat);
        // Decaying it would have moved it: TorchSharp leaves a tensor without a gradient alone, and so must we.
        Assert.True(actual["unused_weight"].Equals(torch.ones(2, 2)));
        foreach (var (name, t) in expected) Assert.True((t - actual[name]).abs().max().item<float>() <= 1e-6, name);
        Assert.Equal(0, ((FlatAdamW)flat).StateOf(b.unused_weight).Step);
        perTensor.Dispose(); flat.Dispose();

        static Dictionary<string, Tensor> Train4(WithUnused m, optim.Optimizer opt)
        {
            var gen = new Generator(9);
            for (int s = 0; s < 20; s++)
            {
                using var scope = torch.NewDisposeScope();
                opt.zero_grad();
                nn.functional.cross_entropy(m.forward(torch.randn(new long[] { 6, 4 }, generator: gen)),
                    torch.randint(0, 3, new long[] { 6 }, generator: gen)).backward();
                opt.step();
            }
            return m.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        }
    }

    static readonly TrainOptions Quick = new() { Epochs = 3, BatchSize = 16, Lr = 3e-3, WarmupEpochs = 1, Seed = 11 };

    static Dictionary<string, Tensor> Fit(TrainOptions o)
    {
        var model = LoraModel();
        var task = TinyData.Task(train: 48, classes: 5);
        var big = new PeftWorkbench.Data.ImageSet(torch.nn.functional.interpolate(task.Train800.Images, new long[] { 16, 16 }),
            task.Train800.Labels, 5, "train");
        Trainer.Fit(model, big, null, o);
        return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
    }

    [Fact]
    public void TheTrainerRepeatsBitForBitAndMatchesThePerTensorPath()
    {
        var first = Fit(Quick);
        var second = Fit(Quick);
        var perTensor = Fit(Quick with { FlatAdamW = false });
        foreach (var (name, t) in first)
        {
            Assert.True(t.Equals(second[name]), $"{name} differs between two runs of the same seed");
            Assert.True((t - perTensor[name]).abs().max().item<float>() <= 1e-6, $"{name}: flat vs per-tensor trainer run");
        }
    }

    [Fact]
    public void Bf16TrainingKeepsFloat32MastersAndReturnsAFloat32ModelThatOwnsItsStorage()
    {
        var model = LoraModel();
        var task = TinyData.Task(train: 32, classes: 5);
        var images = torch.nn.functional.interpolate(task.Train800.Images, new long[] { 16, 16 });
        var h = Trainer.Fit(model, new PeftWorkbench.Data.ImageSet(images, task.Train800.Labels, 5, "train"), null, Quick with { Bf16 = true });
        Assert.True(h.Completed);
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.Throws<ArgumentException>(() => new FlatAdamW(new[] { new AdamW.ParamGroup(new[] { new Parameter(torch.zeros(2, dtype: ScalarType.BFloat16)) }) }));
    }
}
