using PeftWorkbench.Analysis;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>The findings notebooks choose a shipped backbone by name (Backbone, $PEFT_BACKBONE; default "mini-hand"): each
/// one gets its own store, and "mini" (the default until 2026-12-07) keeps the unsuffixed stores and robustness run names it
/// wrote before.</summary>
public class BackboneChoiceTests
{
    [Fact]
    public void A_backbone_name_maps_to_its_checkpoint_and_its_own_store_and_a_typo_is_named()
    {
        Assert.Contains("mini-hand", VisionTransformer.PretrainedNames);
        Assert.Null(Study.CheckpointOf(null));
        Assert.Equal("shipped:mini-hand", Study.CheckpointOf("mini-hand"));
        var e = Assert.Throws<ArgumentException>(() => Study.CheckpointOf("mini-hnad"));
        Assert.Contains("'mini-hnad'", e.Message);
        Assert.Contains("mini-hand", e.Message);

        var runs = Path.Combine(Workbench.DataDir, "runs");
        Assert.Equal("mini-hand", Workbench.DefaultBackbone);
        Assert.Equal("shipped:mini-hand", Study.CheckpointFor(null, "mini")); // notebooks, `peft train` and `peft sweep` alike
        Assert.Equal(Path.Combine(runs, "default-mini-hand"), Study.DefaultStore("default")); // the default backbone
        Assert.Equal(Path.Combine(runs, "default-mini-hand"), Study.DefaultStore("default", "mini-hand"));
        Assert.Equal(Path.Combine(runs, "default"), Study.DefaultStore("default", "mini")); // where mini's runs have always been
        Assert.Throws<ArgumentException>(() => Study.DefaultStore("default", "nope"));
    }

    [Fact]
    public void The_robustness_run_of_each_backbone_has_its_own_name_and_mini_keeps_the_unsuffixed_one()
    {
        var options = Profiles.Default.Robustness;
        var alphas = new[] { 0.0, 1.0 };
        string Name(string? backbone) => Robustness.RunName("lora", null, options, alphas, Robustness.DefaultShifts, select: Profiles.Default.RobustnessSelection, backbone: backbone);
        Assert.Equal(Name(null), Name("mini-hand")); // null is the default backbone
        Assert.NotEqual(Name("mini"), Name("mini-hand"));
        using var zeroShot = Robustness.ZeroShotModel("mini-hand");
        Assert.Equal(10, zeroShot.Config.NumClasses); // the digit outputs of the 188-way head
        Assert.Throws<ArgumentException>(() => Robustness.ZeroShotModel("nope"));
    }

    [Fact]
    public void The_backbone_variable_reads_PEFT_BACKBONE_and_refuses_a_typo()
    {
        var before = Environment.GetEnvironmentVariable("PEFT_BACKBONE");
        try
        {
            Environment.SetEnvironmentVariable("PEFT_BACKBONE", null);
            Assert.Equal(Workbench.DefaultBackbone, Workbench.Backbone);
            Environment.SetEnvironmentVariable("PEFT_BACKBONE", "mini");
            Assert.Equal("mini", Workbench.Backbone);
            Environment.SetEnvironmentVariable("PEFT_BACKBONE", "mini-hand");
            Assert.Equal("mini-hand", Workbench.Backbone);
            Environment.SetEnvironmentVariable("PEFT_BACKBONE", "mini-hnad");
            Assert.Contains("mini-hnad", Assert.Throws<ArgumentException>(() => Workbench.Backbone).Message);
        }
        finally { Environment.SetEnvironmentVariable("PEFT_BACKBONE", before); }
    }
}
