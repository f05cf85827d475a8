using PeftWorkbench.Tests.Peft;
using PeftWorkbench.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Training;

using Peft = global::PeftWorkbench.Peft.Peft;

/// <summary>Our SGD (explicit Scalars) against TorchSharp's SGD, which it replaces in the trainer.</summary>
public class MomentumSgdTests
{
    [Fact]
    public void MomentumSgdEqualsTorchSharpsSgdOver50StepsWithTwoDecayGroupsAndAChangingLr()
    {
        using var a = Peft.Attach(MethodMatrixTests.Backbone(), MethodMatrixTests.TinyOptions("lora"), seed: 1);
        using var b = Peft.Attach(MethodMatrixTests.Backbone(), MethodMatrixTests.TinyOptions("lora"), seed: 1);
        optim.Optimizer Make(nn.Module<Tensor, Tensor> m, bool ours)
        {
            var (decay, noDecay) = WeightDecayGroups.Split(m);
            Assert.NotEmpty(decay); Assert.NotEmpty(noDecay);
            var groups = new[]
            {
                new SGD.ParamGroup(decay.Select(p => p.Param).ToList(), lr: 0.05, momentum: 0.9, weight_decay: 0.01),
                new SGD.ParamGroup(noDecay.Select(p => p.Param).ToList(), lr: 0.05, momentum: 0.9, weight_decay: 0),
            };
            return ours ? new MomentumSgd(groups, 0.05) : torch.optim.SGD(groups, 0.05, momentum: 0.9);
        }
        using var theirs = Make(a, ours: false);
        using var ours = Make(b, ours: true);
        foreach (var (model, opt) in new[] { (a, theirs), (b, ours) })
        {
            var gen = new Generator(5);
            torch.manual_seed(7);
            model.train();
            for (int s = 0; s < 50; s++)
            {
                using var scope = torch.NewDisposeScope();
                foreach (var g in opt.ParamGroups) g.LearningRate = 0.05 * (1 + Math.Cos(Math.PI * s / 50)) / 2;
                var x = torch.randn(new long[] { 8, 3, 16, 16 }, generator: gen);
                var y = torch.randint(0, 5, new long[] { 8 }, generator: gen);
                opt.zero_grad();
                nn.functional.cross_entropy(model.forward(x), y).backward();
                opt.step();
            }
        }
        var pa = a.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        int trained = 0;
        foreach (var (name, p) in b.named_parameters())
        {
            Assert.True(torch.allclose(pa[name], p, rtol: 1e-4, atol: 1e-6), $"{name} differs");
            if (p.requires_grad) trained++;
        }
        Assert.True(trained > 0);
    }

    [Fact]
    public void TheTrainerUsesItForSgd()
    {
        using var m = nn.Linear(4, 2);
        var (decay, noDecay) = WeightDecayGroups.Split(m);
        using var opt = Trainer.MakeOptimizer(new TrainOptions { Optimizer = "sgd" }, decay.Select(p => p.Param), noDecay.Select(p => p.Param));
        Assert.IsType<MomentumSgd>(opt);
    }
}
