using System.CommandLine;
using PeftWorkbench.Data;
using PeftWorkbench.Data.Upstream;
using PeftWorkbench.Training;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft pretrain`: the glyph recipes (one run, as the shipped "mini" was made) and the resumable broad
/// recipes (checkpoint every N steps, --resume continues, progress with an ETA).</summary>
public static class PretrainCommand
{
    public static Command Create()
    {
        var known = PretrainRecipe.Recipes.Keys.Concat(BroadRecipe.Recipes.Keys);
        var recipe = new Option<string>("--recipe") { Description = "Recipe: " + string.Join(", ", known), Required = true };
        var outDir = new Option<string>("--out") { Description = "Output folder for <recipe>.safetensors and <recipe>.recipe.json (and the broad recipes' <recipe>.state.safetensors).", DefaultValueFactory = _ => "." };
        var threads = new Option<int?>("--threads") { Description = "torch CPU threads (default: libtorch's choice). A resumed run matches an uninterrupted one bit for bit only with the same threads." };
        var resume = new Option<bool>("--resume") { Description = "Broad recipes: continue from <out>/<recipe>.state.safetensors (refused if another recipe or data seed wrote it)." };
        var dataSeed = new Option<ulong?>("--data-seed") { Description = "Broad recipes: another data seed than the recipe's (a different run; it cannot resume the recipe's checkpoint)." };
        var preview = new Option<string?>("--preview") { Description = "Broad recipes: write a PNG grid of 128 upstream images (16 per row, glyphs, fractals, textures, shapes as drawn) to this path and exit." };
        var cmd = new Command("pretrain", "Run an upstream pre-training recipe and write the checkpoint and its recipe JSON.") { recipe, outDir, threads, resume, dataSeed, preview };
        cmd.SetAction((r, cancel) => Cli.Guard(() =>
        {
            string name = r.GetValue(recipe)!, dir = r.GetValue(outDir)!;
            if (!BroadRecipe.IsKnown(name) && !PretrainRecipe.Recipes.ContainsKey(name))
                throw new ArgumentException($"Unknown pre-training recipe '{name}'. Known: {string.Join(", ", known)}.");
            if (r.GetValue(threads) is int t) ThreadBudget.Pin(t);
            if (r.GetValue(preview) is { } png)
            {
                var rec = BroadRecipe.Get(name);
                using var fonts = GlyphRenderer.FromSystemFonts();
                ImageGrid.SavePng(rec.Upstream(fonts).Render(128, rec.DataSeed, "preview"), png, 128, 16, 3);
                Console.WriteLine($"[pretrain] wrote {png}");
                return Task.FromResult(0);
            }
            return Task.FromResult(BroadRecipe.IsKnown(name)
                ? Broad(BroadRecipe.Get(name), dir, r.GetValue(resume), r.GetValue(dataSeed), r.GetValue(threads), cancel)
                : Glyphs(PretrainRecipe.Get(name), dir, r.GetValue(resume) || r.GetValue(dataSeed) is not null, cancel));
        }));
        return cmd;
    }

    static int Broad(BroadRecipe rec, string dir, bool resume, ulong? dataSeed, int? threads, CancellationToken cancel)
    {
        if (dataSeed is ulong s) rec = rec with { DataSeed = s };
        string command = $"peft pretrain --recipe {rec.Name} --out {dir}" + (threads is int t ? $" --threads {t}" : "") + (dataSeed is null ? "" : $" --data-seed {dataSeed}");
        DateTime last = DateTime.MinValue;
        var progress = new Progress(p =>
        {
            if (DateTime.UtcNow - last < TimeSpan.FromSeconds(30) && p.Step != p.TotalSteps) return;
            last = DateTime.UtcNow;
            Console.WriteLine($"[pretrain] step {p.Step}/{p.TotalSteps} ({100.0 * p.Step / p.TotalSteps:F1} %), lr {p.Lr:E2}, {p.ImagesPerSecond:F0} img/s, ETA {Eta(p.EtaSeconds)}");
        });
        var (model, record, completed) = BroadPretraining.Run(rec, dir, resume, command, m => Console.WriteLine($"[pretrain] {m}"), progress, cancel);
        model.Dispose();
        if (!completed) return 130;
        Console.WriteLine($"[pretrain] wrote {Path.Combine(dir, rec.Name)}.safetensors and .recipe.json");
        Console.WriteLine(record["time"]!.ToJsonString());
        return 0;
    }

    static string Eta(double seconds) => seconds < 3600 ? $"{seconds / 60:F0} min" : $"{(int)(seconds / 3600)} h {seconds % 3600 / 60:F0} min";

    static int Glyphs(PretrainRecipe rec, string dir, bool broadOnly, CancellationToken cancel)
    {
        if (broadOnly) throw new ArgumentException($"--resume and --data-seed are for the broad recipes ({string.Join(", ", BroadRecipe.Recipes.Keys)}); '{rec.Name}' runs in one go.");
        string command = $"peft pretrain --recipe {rec.Name} --out {dir}";
        var (model, record) = Pretraining.Run(rec, dir, command, new ConsoleProgressBar($"pretrain {rec.Name}"), m => Console.WriteLine($"[pretrain] {m}"), cancel);
        model.Dispose();
        Console.WriteLine($"[pretrain] wrote {Path.Combine(dir, rec.Name)}.safetensors and .recipe.json");
        Console.WriteLine(record["results"]!.ToJsonString());
        Console.WriteLine(record["time"]!.ToJsonString());
        return 0;
    }

    sealed class Progress(Action<PretrainStatus> report) : IProgress<PretrainStatus>
    {
        public void Report(PretrainStatus value) => report(value);
    }
}
