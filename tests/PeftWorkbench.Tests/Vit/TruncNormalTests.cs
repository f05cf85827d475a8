using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Vit;

public class TruncNormalTests
{
    [Fact]
    public void FillsWithTheRequestedSpreadWithinTheBounds()
    {
        torch.manual_seed(0);
        var t = TruncNormal.Fill_(torch.empty(200, 200), std: 0.02);
        Assert.InRange(t.std().item<float>(), 0.0195f, 0.0205f);
        Assert.InRange(t.mean().item<float>(), -0.001f, 0.001f);
        // Tight bounds truncate: std 1 cut at +-1 has std about 0.54 and nothing outside.
        var cut = TruncNormal.Fill_(torch.empty(200, 200), mean: 0, std: 1, a: -1, b: 1);
        Assert.True(cut.abs().max().item<float>() <= 1);
        Assert.InRange(cut.std().item<float>(), 0.52f, 0.56f);
    }

    [Fact]
    public void TheVitsLinearWeightsAreRandomNotConstant()
    {
        // TorchSharp's own trunc_normal_ fills every weight with the std (0.02): the ViT must not.
        using var vit = new VisionTransformer(VitConfig.Preset("mini"), seed: 0);
        var qkv = ((TorchSharp.Modules.Linear)((Attention)((Block)vit.blocks[0]).attn).qkv).weight;
        Assert.InRange(qkv.std().item<float>(), 0.018f, 0.022f);
        Assert.InRange(vit.pos_embed.std().item<float>(), 0.015f, 0.025f);
    }
}
