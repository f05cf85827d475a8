using PeftWorkbench.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Training;

public class WeightDecayGroupTests
{
    sealed class WithPrompts : nn.Module<Tensor, Tensor>
    {
        public Parameter deep_prompt = nn.Parameter(torch.zeros(2, 3, 16));
        public Parameter lora_A = nn.Parameter(torch.zeros(4, 16));
        public Parameter ssf_scale = nn.Parameter(torch.ones(16));
        public Parameter gamma_2d = nn.Parameter(torch.ones(2, 16));
        public Linear frozen = nn.Linear(16, 16);
        public WithPrompts() : base("WithPrompts") { RegisterComponents(); frozen.weight!.requires_grad = false; frozen.bias!.requires_grad = false; }
        public override Tensor forward(Tensor x) => x;
    }

    [Fact]
    public void VitDecaysOnlyItsMatrices()
    {
        using var vit = TinyData.Vit();
        var (decay, noDecay) = WeightDecayGroups.Split(vit.named_parameters());
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
    public void PromptsScalesAndGammasNeverDecayFrozenParametersAreLeftOut()
    {
        using var m = new WithPrompts();
        var (decay, noDecay) = WeightDecayGroups.Split(m.named_parameters());
        Assert.Equal(new[] { "lora_A" }, decay.Select(p => p.Name));
        Assert.Equal(new[] { "deep_prompt", "ssf_scale", "gamma_2d" }.OrderBy(s => s), noDecay.Select(p => p.Name).OrderBy(s => s));
    }
}
