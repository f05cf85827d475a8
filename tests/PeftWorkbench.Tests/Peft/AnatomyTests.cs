using PeftWorkbench.Peft;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tests.Peft;

public class AnatomyTests
{
    [Theory]
    [InlineData("blocks.0.attn.qkv.lora_A", "attn.qkv")]
    [InlineData("blocks.0.attn.ssf_scale", "attn")]
    [InlineData("blocks.0.ls1.gamma", "ls1")]
    [InlineData("blocks.0.prompt", "block, other")]
    [InlineData("blocks.3.mlp.fc1.bias", "other blocks")]
    [InlineData("head.weight", "head")]
    [InlineData("fact_u", "outside")]
    public void SlotOfTakesTheLongestSlotThatPrefixesTheName(string name, string slot) => Assert.Equal(slot, Anatomy.SlotOf(name));

    [Fact]
    public void SlotCountsAddUpToTheModelsTrainableCount()
    {
        var counts = Anatomy.CountsBySlot(new[] { "lora", "bitfit", "linear" }, () => VisionTransformer.Pretrained("mini"));
        using var vit = VisionTransformer.Pretrained("mini");
        var lora = global::PeftWorkbench.Peft.Peft.Attach(vit, "lora", seed: 0);
        Assert.Equal(lora.TrainableParameterCount, counts["lora"].Values.Sum());
        Assert.True(counts["lora"]["attn.qkv"] > 0);
        Assert.Equal(new[] { "head" }, counts["linear"].Keys);
        var table = Anatomy.SlotTable(counts);
        Assert.Equal(3, table.Rows.Count);
        Assert.Equal(1 + Anatomy.Columns.Count, table.Columns.Count);
        Assert.Equal("", table["attn.qkv"][2]); // the linear probe trains nothing in block 0
    }

    [Fact]
    public void StudyCountsOnTheVitB16ShapeEqualThePublishedOnesAndAnUnknownTaskIsNamed()
    {
        var table = Anatomy.StudyCounts("cifar");
        Assert.Equal(16, table.Rows.Count);
        Assert.All(Enumerable.Range(0, 16), i => Assert.True((bool)table["equal"][i]!, $"{table["method"][i]}: ours {table["ours"][i]}, paper {table["paper"][i]}"));
        var e = Assert.Throws<ArgumentException>(() => Anatomy.StudyCounts("cifar-1000"));
        Assert.Contains("cifar-1000", e.Message);
    }
}
