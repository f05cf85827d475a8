using PeftWorkbench.Analysis;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>The findings notebooks choose a shipped backbone by name (Backbone, $PEFT_BACKBONE): each one other than the
/// default gets its own store, and the default's stores and robustness run names stay as they were.</summary>
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
        Assert.Equal(Path.Combine(runs, "default"), Study.DefaultStore("default"));
        Assert.Equal(Path.Combine(runs, "default"), Study.DefaultStore("default", "mini")); // the suite's default backbone
        Assert.Equal(Path.Combine(runs, "default-mini-hand"), Study.DefaultStore("default", "mini-hand"));
        Assert.Throws<ArgumentException>(() => Study.DefaultStore("default", "nope"));
    }

    [Fact]
    public void The_robustness_run_of_another_backbone_has_another_name_and_the_defaults_name_is_unchanged()
    {
        var options = Profiles.Default.Robustness;
        var alphas = new[] { 0.0, 1.0 };
        string Name(string? backbone) => Robustness.RunName("lora", null, options, alphas, Robustness.DefaultShifts, select: Profiles.Default.RobustnessSelection, backbone: backbone);
        Assert.Equal(Name(null), Name("mini"));
        Assert.NotEqual(Name(null), Name("mini-hand"));
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
            Assert.Null(Workbench.Backbone);
            Environment.SetEnvironmentVariable("PEFT_BACKBONE", "mini-hand");
            Assert.Equal("mini-hand", Workbench.Backbone);
            Environment.SetEnvironmentVariable("PEFT_BACKBONE", "mini-hnad");
            Assert.Contains("mini-hnad", Assert.Throws<ArgumentException>(() => Workbench.Backbone).Message);
        }
        finally { Environment.SetEnvironmentVariable("PEFT_BACKBONE", before); }
    }
}
