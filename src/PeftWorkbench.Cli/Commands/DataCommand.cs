using System.CommandLine;
using PeftWorkbench.Data;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft data ...` (the mini suite); `peft pretrain` lives in PretrainCommand.cs.</summary>
public static class DataCommand
{
    public static IEnumerable<Command> Create() => new[] { Data() };

    static Command Data()
    {
        var data = new Command("data", "The mini VTAB suite: list tasks, build the cache, preview images, zero-shot accuracy.");

        var vtab = new Option<string?>("--vtab") { Description = "List a VTAB-1K folder root instead of the mini suite." };
        var list = new Command("list", "Every task with its group, source, classes and split sizes.") { vtab };
        list.SetAction(r => Cli.Guard(() => Print(DataReports.List(r.GetValue(vtab) is { } root ? Suite.FromVtabFolder(root) : Suite.Mini))));

        var noMany = new Option<bool>("--no-many-shot") { Description = "Skip the many-shot training splits." };
        var build = new Command("build", "Build (or check) the rendered suite cache for every task.") { noMany };
        build.SetAction(r => Cli.Guard(() =>
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var built = Suite.Mini.BuildAll(!r.GetValue(noMany), Console.WriteLine);
            Console.WriteLine($"{built.Count} task(s) built, {Suite.Mini.Tasks.Count - built.Count} cached, {sw.Elapsed.TotalSeconds:F1} s; cache {Suite.Mini.CacheDir}");
            return 0;
        }));

        var task = new Option<string>("--task") { Description = "Task name (see `peft data list`), or 'glyphs' for the upstream pre-training images.", Required = true };
        var split = new Option<string>("--split") { Description = "train800, val200, train800val200, test, train-many, or shift:<name>.", DefaultValueFactory = _ => "train800" };
        var outPng = new Option<string>("--out") { Description = "PNG file to write.", Required = true };
        var preview = new Command("preview", "Write a PNG grid of the first 64 images of a split.") { task, split, outPng };
        preview.SetAction(r => Cli.Guard(() =>
        {
            string t = r.GetValue(task)!, s = r.GetValue(split)!;
            RawImages raw;
            if (t == "glyphs") { using var fonts = GlyphRenderer.FromSystemFonts(); raw = fonts.Render(64, 1, MiniSuite.ImageSize, "preview"); }
            else raw = s.StartsWith("shift:") ? Suite.Mini.LoadShiftRaw(t, s[6..]) : Suite.Mini.LoadRaw(t, s);
            ImageGrid.SavePng(raw, r.GetValue(outPng)!);
            Console.WriteLine($"{raw.Source}: {raw.Count} images; labels of the first 16: {string.Join(" ", raw.Labels.Take(16))} -> {r.GetValue(outPng)}");
            return 0;
        }));

        var zeroShotBackbone = new Option<string>("--backbone") { Description = "A shipped name (" + string.Join(", ", VisionTransformer.PretrainedNames) + ") or a checkpoint file.", DefaultValueFactory = _ => Workbench.DefaultBackbone };
        var zeroShot = new Command("zero-shot", "A backbone's zero-shot digit accuracy (head outputs 0-9) on MNIST test and the digit shift sets.") { zeroShotBackbone };
        zeroShot.SetAction(r => Cli.Guard(() => Print(DataReports.ZeroShotDigits(Suite.Mini, r.GetValue(zeroShotBackbone)!))));

        var groups = new Option<string>("--groups") { Description = "Comma-separated groups to probe.", DefaultValueFactory = _ => "natural,specialized,structured" };
        var backbone = new Option<string>("--backbone") { Description = "The backbone to probe: a shipped name (" + string.Join(", ", VisionTransformer.PretrainedNames) + "), a checkpoint file or a pre-training state (*.state.safetensors). Not 'mini': today's mini is probed beside it and the shipping rule is checked.", DefaultValueFactory = _ => "mini" };
        var probe = new Command("probe", "Linear probes (train800val200 -> test) on a backbone and on a randomly initialised ViT: does pre-training transfer?") { groups, backbone };
        probe.SetAction(r => Cli.Guard(() => Print(DataReports.Probe(Suite.Mini, r.GetValue(backbone)!, Cli.Split(new[] { r.GetValue(groups)! })))));

        data.Subcommands.Add(list);
        data.Subcommands.Add(probe);
        data.Subcommands.Add(build);
        data.Subcommands.Add(preview);
        data.Subcommands.Add(zeroShot);
        return data;
    }

    static int Print(IEnumerable<string> lines)
    {
        foreach (var line in lines) Console.WriteLine(line);
        return 0;
    }
}
