using System.CommandLine;
using PeftWorkbench.Vit;
using TorchSharp;

namespace PeftWorkbench.Cli.Commands;

public static class VitCommand
{
    public static Command Create()
    {
        var vit = new Command("vit", "Vision Transformer presets.");

        var preset = new Option<string>("--preset") { Description = "Preset name: " + string.Join(", ", VitConfig.Presets.Keys), Required = true };
        var classes = new Option<int?>("--classes") { Description = "Head size (default: the preset's)." };
        var summary = new Command("summary", "Parameters per module and the total for a preset.") { preset, classes };
        summary.SetAction(r => Cli.Guard(() =>
        {
            var config = VitConfig.Preset(r.GetValue(preset)!).WithClasses(r.GetValue(classes));
            using var model = new VisionTransformer(config, seed: 0);
            Console.WriteLine($"{config.Name}: {config.ImageSize} px, patch {config.PatchSize}, dim {config.EmbedDim}, depth {config.Depth}, heads {config.NumHeads}, {config.NumClasses} classes");
            foreach (var (module, count) in model.ParameterSummary())
                Console.WriteLine($"  {module,-12} {count,14:N0}");
            Console.WriteLine($"  {"total",-12} {model.ParameterCount,14:N0}");
            return 0;
        }));

        var forward = new Command("forward", "One forward pass of a randomly initialised preset on random images; prints the output shape and time.") { preset };
        var batch = new Option<int>("--batch") { Description = "Batch size.", DefaultValueFactory = _ => 8 };
        forward.Options.Add(batch);
        forward.SetAction(r => Cli.Guard(() =>
        {
            var config = VitConfig.Preset(r.GetValue(preset)!);
            using var model = new VisionTransformer(config, seed: 0);
            model.eval();
            using var scope = torch.NewDisposeScope();
            using var _ = torch.no_grad();
            var x = torch.randn(r.GetValue(batch), config.InChans, config.ImageSize, config.ImageSize, generator: new torch.Generator(0));
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var y = model.call(x);
            Console.WriteLine($"{config.Name}: input [{string.Join(", ", x.shape)}] -> logits [{string.Join(", ", y.shape)}] in {sw.ElapsedMilliseconds} ms");
            return 0;
        }));

        vit.Subcommands.Add(summary);
        vit.Subcommands.Add(forward);
        return vit;
    }
}
