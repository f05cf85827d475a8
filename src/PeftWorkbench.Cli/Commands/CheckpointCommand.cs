using System.CommandLine;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft vit load`: loads a checkpoint into a preset ViT and prints what was loaded, resampled and skipped.</summary>
public static class CheckpointCommand
{
    /// <summary>Adds `load` to the `vit` command group of <paramref name="root"/>.</summary>
    public static void AddTo(RootCommand root)
    {
        var vit = root.Subcommands.First(c => c.Name == "vit");
        vit.Subcommands.Add(Create());
        vit.Subcommands.Add(CreateExport());
    }

    /// <summary>`peft vit export`: a checkpoint (any format `load` reads) rewritten with timm names for PyTorch users.</summary>
    public static Command CreateExport()
    {
        var preset = new Option<string>("--preset") { Description = "Preset name: " + string.Join(", ", VitConfig.Presets.Keys), Required = true };
        var checkpoint = new Option<string>("--checkpoint") { Description = "Weights to export (.safetensors, Google .npz, .pth/.bin/.pt).", Required = true };
        var output = new Option<string>("--out") { Description = "File to write.", Required = true };
        var format = new Option<string?>("--format") { Description = "pth (torch.load(path, weights_only=True)) or safetensors; default: by the --out extension." };
        format.AcceptOnlyFromAmong("pth", "safetensors");
        var classes = new Option<int?>("--classes") { Description = "Head size (default: the preset's)." };
        var cmd = new Command("export", "Write a checkpoint as a timm-named state dict for PyTorch (.pth or safetensors).") { preset, checkpoint, output, format, classes };
        // Cli.Guard: a folder we may not write to (UnauthorizedAccessException) is a one-line error too, not a trace.
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var config = VitConfig.Preset(r.GetValue(preset)!).WithClasses(r.GetValue(classes));
            string outPath = r.GetValue(output)!;
            Checkpoints.RegularFile.RequireReplaceable(Path.GetFullPath(outPath)); // before the checkpoint is read
            var report = VitWeights.Export(config, Workbench.FindCheckpoint(r.GetValue(checkpoint)!), outPath, r.GetValue(format));
            Console.WriteLine(report);
            Console.WriteLine($"  wrote {outPath} ({new FileInfo(outPath).Length:N0} bytes)");
            return 0;
        }));
        return cmd;
    }

    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = "Preset name: " + string.Join(", ", VitConfig.Presets.Keys), Required = true };
        var checkpoint = new Option<string>("--checkpoint")
        {
            Description = "Checkpoint file (.safetensors, Google .npz, .pth/.bin/.pt); a bare file name is also looked for in: " + string.Join(", ", Workbench.CheckpointDirs),
            Required = true,
        };
        var classes = new Option<int?>("--classes") { Description = "Head size (default: the preset's)." };
        var imageSize = new Option<int?>("--image-size") { Description = "Image size (default: the preset's); pos_embed is resampled when the grid differs." };
        var key = new Option<string?>("--state-dict-key") { Description = "PyTorch checkpoints: the key of the nested state dict (default: automatic)." };
        var save = new Option<string?>("--save") { Description = "Also write the loaded weights as safetensors with timm names to this path." };
        var cmd = new Command("load", "Load a checkpoint into a preset ViT (strict names and shapes) and print the report.")
            { preset, checkpoint, classes, imageSize, key, save };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var config = VitConfig.Preset(r.GetValue(preset)!).WithClasses(r.GetValue(classes));
            if (r.GetValue(imageSize) is int s) config = config with { ImageSize = s };
            using var model = new VisionTransformer(config, seed: 0);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            Console.WriteLine(VitWeights.Load(model, Workbench.FindCheckpoint(r.GetValue(checkpoint)!), new VitLoadOptions { StateDictKey = r.GetValue(key) }));
            Console.WriteLine($"  {model.ParameterCount:N0} parameters, loaded in {sw.ElapsedMilliseconds} ms");
            if (r.GetValue(save) is { } outPath)
            {
                VitWeights.Save(model, outPath);
                Console.WriteLine($"  saved {outPath} ({new FileInfo(outPath).Length:N0} bytes)");
            }
            return 0;
        }));
        return cmd;
    }
}
