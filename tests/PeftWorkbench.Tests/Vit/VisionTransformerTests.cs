using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Vit;

public class VisionTransformerTests
{
    [Theory]
    [InlineData("mini")]
    [InlineData("mini-p4")]
    [InlineData("tiny-32")]
    [InlineData("small-32")]
    [InlineData("vit-b16")]
    [InlineData("clip-vit-b16")]
    public void EveryPresetMapsImagesToLogitsAndFeatures(string preset)
    {
        var c = VitConfig.Preset(preset);
        using var model = new VisionTransformer(c, seed: 1);
        model.eval();
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var x = torch.randn(2, c.InChans, c.ImageSize, c.ImageSize);
        var feats = model.ForwardFeatures(x);
        Assert.Equal(new long[] { 2, c.NumPatches + 1, c.EmbedDim }, feats.shape);
        Assert.Equal(new long[] { 2, c.NumClasses }, model.ForwardHead(feats).shape);
        Assert.Equal(new long[] { 2, c.EmbedDim }, model.ForwardHead(feats, preLogits: true).shape);
    }

    [Fact]
    public void VitB16HasTheStudysParameterCount()
    {
        using var model = new VisionTransformer(VitConfig.Preset("vit-b16"));
        Assert.Equal(86_567_656, model.ParameterCount);
        model.ResetHead(0);
        Assert.Equal(85_798_656, model.ParameterCount);
    }

    [Fact]
    public void SameSeedGivesBitIdenticalOutputs()
    {
        var c = VitConfig.Preset("mini") with { DropPathRate = 0.1 };
        float[] Run()
        {
            using var m = new VisionTransformer(c, seed: 7);
            m.eval();
            using var _ = torch.no_grad();
            var x = torch.randn(3, 3, 32, 32, generator: new Generator(3));
            return m.forward(x).data<float>().ToArray();
        }
        Assert.Equal(Run(), Run());
        using var other = new VisionTransformer(c, seed: 8);
        other.eval();
        using var g = torch.no_grad();
        Assert.NotEqual(Run()[0], other.call(torch.randn(3, 3, 32, 32, generator: new Generator(3))).data<float>()[0]);
    }

    [Fact]
    public void AttentionEqualsScaledDotProductAttention()
    {
        torch.manual_seed(0);
        using var attn = new Attention(64, 4, qkvBias: true);
        attn.eval();
        using var _ = torch.no_grad();
        var x = torch.randn(2, 9, 64);
        var qkv = ((Tensor)((TorchSharp.Modules.Linear)attn.qkv).forward(x)).reshape(2, 9, 3, 4, 16).permute(2, 0, 3, 1, 4);
        var reference = torch.nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(2, 9, 64);
        reference = attn.proj.forward(reference);
        Assert.True(torch.allclose(attn.forward(x), reference, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void LayerNormsUseTimmsEpsilon()
    {
        using var model = new VisionTransformer(VitConfig.Preset("mini"));
        var norms = model.modules().OfType<TorchSharp.Modules.LayerNorm>().ToList();
        Assert.Equal(2 * 6 + 1, norms.Count);
    }

    [Fact]
    public void NoWeightDecayCoversPositionsClassTokenNormsAndBiases()
    {
        using var model = new VisionTransformer(VitConfig.Preset("mini"));
        var exempt = model.NoWeightDecay();
        Assert.Contains("pos_embed", exempt);
        Assert.Contains("cls_token", exempt);
        Assert.Contains("blocks.0.norm1.weight", exempt);
        Assert.Contains("blocks.0.attn.qkv.bias", exempt);
        Assert.DoesNotContain("blocks.0.attn.qkv.weight", exempt);
        Assert.DoesNotContain("head.weight", exempt);
    }

    [Fact]
    public void ResetHeadChangesTheClassCount()
    {
        using var model = new VisionTransformer(VitConfig.Preset("mini"), seed: 0);
        model.ResetHead(37);
        Assert.Equal(37, model.Config.NumClasses);
        model.eval();
        Assert.Equal(new long[] { 1, 37 }, model.call(torch.zeros(1, 3, 32, 32)).shape);
        Assert.Contains(model.named_parameters(), p => p.name == "head.weight" && p.parameter.shape[0] == 37);
    }

    [Fact]
    public void WrongImageSizeIsAClearError()
    {
        using var model = new VisionTransformer(VitConfig.Preset("mini"));
        var e = Assert.Throws<ArgumentException>(() => model.forward(torch.zeros(1, 3, 28, 28)));
        Assert.Contains("32", e.Message);
    }
}
