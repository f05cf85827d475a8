using PeftWorkbench.Peft;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Peft;

using Peft = global::PeftWorkbench.Peft.Peft;

/// <summary>
/// The merge of a layer without a bias (CLIP's patch convolution, a qkv without bias), where the merged shift cannot be
/// written in place and <see cref="InPlaceMerge"/> keeps it: the method matrix's ViT has every bias, so it never goes there.
/// </summary>
public class InPlaceMergeTests
{
    static readonly VitConfig NoBias = MethodMatrixTests.Tiny with { Name = "tiny-no-bias", PatchBias = false, QkvBias = false };

    [Theory]
    [InlineData("ssf")]  // SSF's patch convolution and its qkv: a merged shift with nowhere to go
    [InlineData("lora")] // a LinearSlot on qkv: its merged map's bias
    public void MergingALayerWithoutABiasMatchesTheUnmergedOutputAndUnmergeLeavesNoBias(string id)
    {
        using var vit = new VisionTransformer(NoBias, seed: 3);
        var model = Peft.Attach(vit, MethodMatrixTests.TinyOptions(id), seed: 1);
        using (torch.no_grad()) // away from the zero init, so that the merged shift is not zero
            foreach (var p in model.TrainableParameters().Select(p => p.Param)) p.add_(torch.randn(p.shape, generator: new Generator(7)) * 0.1);
        var x = torch.randn(new long[] { 4, 3, 16, 16 }, generator: new Generator(11));
        model.eval();
        foreach (var strength in new[] { 1.0, 0.5 })
        {
            model.Strength = strength;
            Tensor unmerged, merged, restored;
            using (torch.no_grad()) unmerged = model.forward(x);
            var names = model.NamedParameters().Select(p => p.Name).ToList();
            model.Merge();
            using (torch.no_grad()) merged = model.forward(x);
            Assert.True(torch.allclose(unmerged, merged, rtol: 1e-5, atol: 1e-5), $"{id} at {strength}: merged differs by {(unmerged - merged).abs().max().item<float>()}");
            Assert.Equal(names, model.NamedParameters().Select(p => p.Name).ToList()); // no bias parameter appears
            model.Unmerge();
            using (torch.no_grad()) restored = model.forward(x);
            Assert.True(unmerged.Equals(restored), $"{id} at {strength}: unmerge does not restore the output bit for bit");
        }
    }
}
