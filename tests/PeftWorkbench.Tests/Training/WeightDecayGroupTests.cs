using PeftWorkbench.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Training;

public class WeightDecayGroupTests
{
    /// <summary>Declares its prompt; its child declares a token; the other 2-D tensors decay whatever their names.</summary>
    sealed class WithPrompts : nn.Module<Tensor, Tensor>, PeftWorkbench.Vit.INoWeightDecay
    {
        public Parameter deep_prompt = nn.Parameter(torch.zeros(2, 3, 16));
        public Parameter lora_A = nn.Parameter(torch.zeros(4, 16));
        public Parameter ssf_scale = nn.Parameter(torch.ones(16));
        public Parameter gamma_2d = nn.Parameter(torch.ones(2, 16));
        public Linear frozen = nn.Linear(16, 16);
        public WithToken child = new();
        public WithPrompts() : base("WithPrompts") { RegisterComponents(); frozen.weight!.requires_grad = false; frozen.bias!.requires_grad = false; }
        public override Tensor forward(Tensor x) => x;
        public IEnumerable<string> NoWeightDecay() => new[] { nameof(deep_prompt) };
    }

    sealed class WithToken : nn.Module<Tensor, Tensor>, PeftWorkbench.Vit.INoWeightDecay
    {
        public Parameter token = nn.Parameter(torch.zeros(1, 16));
        public Parameter prompt_named_but_undeclared = nn.Parameter(torch.zeros(1, 16));
        public WithToken() : base("WithToken") { RegisterComponents(); }
        public override Tensor forward(Tensor x) => x;
        public IEnumerable<string> NoWeightDecay() => new[] { nameof(token) };
    }

    [Fact]
    public void VitDecaysOnlyItsMatrices()
    {
        using var vit = TinyData.Vit();
        var (decay, noDecay) = WeightDecayGroups.Split(vit);
        var d = decay.Select(p => p.Name).ToHashSet();
        Assert.Equal(new HashSet<string>
        {
            "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight",
            "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.weight", "head.weight",
        }, d);
        var nd = noDecay.Select(p => p.Name).ToHashSet();
        foreach (var name in new[] { "cls_token", "pos_embed", "blocks.0.norm1.weight", "blocks.0.norm1.bias", "head.bias", "norm.weight" })
            Assert.Contains(name, nd);
        // Every trainable parameter lands in exactly one group; the ViT's own exemption list agrees.
        Assert.Equal(vit.parameters().Count(), decay.Count + noDecay.Count);
        Assert.Empty(vit.NoWeightDecay().Intersect(d));
    }

    [Fact]
    public void DeclaredTensorsAndOneDimensionalOnesNeverDecayFrozenParametersAreLeftOut()
    {
        using var m = new WithPrompts();
        var (decay, noDecay) = WeightDecayGroups.Split(m);
        Assert.Equal(new[] { "child.prompt_named_but_undeclared", "gamma_2d", "lora_A" }, decay.Select(p => p.Name).OrderBy(s => s, StringComparer.Ordinal));
        Assert.Equal(new[] { "child.token", "deep_prompt", "ssf_scale" }, noDecay.Select(p => p.Name).OrderBy(s => s, StringComparer.Ordinal));
    }
}
