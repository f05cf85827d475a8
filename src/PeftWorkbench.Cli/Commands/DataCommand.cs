using System.CommandLine;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
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
        list.SetAction(r => Cli.Guard(() =>
        {
            Suite suite = r.GetValue(vtab) is { } root ? Suite.FromVtabFolder(root) : Suite.Mini;
            Console.WriteLine($"suite: {suite.Name}");
            Console.WriteLine($"{"task",-15} {"group",-12} {"classes",7} {"train800",8} {"val200",6} {"tr800val200",11} {"test",6} {"many-shot",9}  shifts  source");
            foreach (var t in suite.Tasks)
                Console.WriteLine($"{t.Name,-15} {t.Group,-12} {t.NumClasses,7} {t.Train800,8} {t.Val200,6} {t.Train800Val200,11} {t.Test,6} {(t.ManyShotTrain > 0 ? t.ManyShotTrain.ToString() : "-"),9}  {t.Shifts.Count,6}  {t.Source}");
            if (suite is MiniSuite m)
                Console.WriteLine($"cache: {m.CacheDir}; shift sets: {string.Join(", ", Corruptions.Names)} at severities 1, 3, 5; real sources: mnist<->digits");
            return 0;
        }));

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
            else raw = s.StartsWith("shift:") ? ShiftRaw(t, s[6..]) : Suite.Mini.LoadRaw(t, s);
            ImageGrid.SavePng(raw, r.GetValue(outPng)!);
            Console.WriteLine($"{raw.Source}: {raw.Count} images; labels of the first 16: {string.Join(" ", raw.Labels.Take(16))} -> {r.GetValue(outPng)}");
            return 0;
        }));

        var zeroShot = new Command("zero-shot", "The shipped checkpoint's zero-shot digit accuracy (head outputs 0-9) on MNIST test and the digit shift sets.");
        zeroShot.SetAction(_ => Cli.Guard(() =>
        {
            using var model = VisionTransformer.Pretrained("mini");
            using (var test = Suite.Mini.LoadSplit("mnist", "test"))
                Console.WriteLine($"mnist/test ({test.Count} images): zero-shot top-1 {ZeroShot.DigitAccuracy(model, test):F2} %");
            foreach (var shift in new[] { "digits", "gaussian_noise-3", "gaussian_blur-3", "contrast-3" })
            {
                using var set = Suite.Mini.LoadShift("mnist", shift);
                Console.WriteLine($"mnist shift {shift} ({set.Count} images): zero-shot top-1 {ZeroShot.DigitAccuracy(model, set):F2} %");
            }
            return 0;
        }));

        var groups = new Option<string>("--groups") { Description = "Comma-separated groups to probe.", DefaultValueFactory = _ => "natural,specialized,structured" };
        var backbone = new Option<string>("--backbone") { Description = "The backbone to probe: a shipped name (" + string.Join(", ", VisionTransformer.PretrainedNames) + "), a checkpoint file or a pre-training state (*.state.safetensors). Not 'mini': today's mini is probed beside it and the shipping rule is checked.", DefaultValueFactory = _ => "mini" };
        var probe = new Command("probe", "Linear probes (train800val200 -> test) on a backbone and on a randomly initialised ViT: does pre-training transfer?") { groups, backbone };
        probe.SetAction(r => Cli.Guard(() =>
        {
            var wanted = r.GetValue(groups)!.Split(',', StringSplitOptions.RemoveEmptyEntries);
            string name = r.GetValue(backbone)!;
            bool compare = name != "mini";
            var options = new TrainOptions { Epochs = 100, WarmupEpochs = 10, BatchSize = 64, Lr = 1e-2, WeightDecay = 1e-4, Seed = 42 };
            using (var check = Backbones.Load(name)) { } // a bad --backbone fails before any probing
            Console.WriteLine(compare
                ? $"| task | group | {name}: logistic | mini: logistic | random init: logistic | {name}: ridge | mini: ridge | random init: ridge |\n|---|---|---|---|---|---|---|---|"
                : "| task | group | pre-trained: logistic | random init: logistic | pre-trained: ridge | random init: ridge |\n|---|---|---|---|---|---|");
            var rows = new List<ProbeRow>();
            foreach (var t in Suite.Mini.Tasks.Where(t => wanted.Contains(t.Group)))
            {
                using var train = Suite.Mini.LoadSplit(t.Name, "train800val200");
                using var test = Suite.Mini.LoadSplit(t.Name, "test");
                using var pre = Backbones.Load(name);
                using var rand = new VisionTransformer(pre.Config, seed: 0);
                var (lp, rp) = TransferProbe.Both(pre, train, test, options);
                var (lr, rr) = TransferProbe.Both(rand, train, test, options);
                if (!compare) { Console.WriteLine($"| {t.Name} | {t.Group} | {lp:F1} | {lr:F1} | {rp:F1} | {rr:F1} |"); continue; }
                using var mini = VisionTransformer.Pretrained("mini");
                var (ml, mr) = TransferProbe.Both(mini, train, test, options);
                Console.WriteLine($"| {t.Name} | {t.Group} | {lp:F1} | {ml:F1} | {lr:F1} | {rp:F1} | {mr:F1} | {rr:F1} |");
                rows.Add(new ProbeRow(t.Name, lp, ml, lr));
            }
            if (compare)
            {
                using var model = Backbones.Load(name);
                using var mnist = Suite.Mini.LoadSplit("mnist", "test");
                double? zeroShot = model.Config.NumClasses >= 10 ? ZeroShot.DigitAccuracy(model, mnist) : null;
                var (ships, reasons) = Backbones.ShippingRule(rows, zeroShot);
                Console.WriteLine($"shipping rule (Pretrained/README.md): {(ships ? "PASSES" : "fails")}");
                foreach (var line in reasons) Console.WriteLine($"  {line}");
            }
            return 0;
        }));

        data.Subcommands.Add(list);
        data.Subcommands.Add(probe);
        data.Subcommands.Add(build);
        data.Subcommands.Add(preview);
        data.Subcommands.Add(zeroShot);
        return data;
    }

    // Corruptions applied to the raw test split, so the preview shows the shift set's actual pixels.
    static RawImages ShiftRaw(string task, string shift)
    {
        if (shift is "digits" or "mnist") return Suite.Mini.LoadRaw(shift, "test");
        int dash = shift.LastIndexOf('-');
        return Corruptions.Apply(Suite.Mini.LoadRaw(task, "test"), shift[..dash], int.Parse(shift[(dash + 1)..]), MiniSuite.Seed);
    }
}
