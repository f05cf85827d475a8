using System.CommandLine;
using PeftWorkbench.Training;
using PeftWorkbench.Peft;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;
using PeftApi = PeftWorkbench.Peft.Peft;

namespace PeftWorkbench.Cli.Commands;

/// <summary>PEFT methods: `peft methods`, `peft params` (`peft bench methods` is in BenchCommand).</summary>
public static class PeftCommand
{
    /// <summary>Adds `methods` and `params`.</summary>
    public static void AddTo(RootCommand root)
    {
        root.Subcommands.Add(Methods());
        root.Subcommands.Add(Params());
    }

    static Command Methods()
    {
        var id = new Argument<string?>("method") { Description = "Show one method (id or alias); all when omitted.", Arity = ArgumentArity.ZeroOrOne };
        var cmd = new Command("methods", "The study's PEFT methods: where each sits, its init, its options (the study's keys) and grid.") { id };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var methods = r.GetValue(id) is string one ? new[] { MethodRegistry.Get(one) } : MethodRegistry.All;
            foreach (var m in methods)
            {
                var defaults = m.Defaults().ToHyperparameters();
                Console.WriteLine($"{m.Id,-15} {m.Name}{(m.Mergeable ? "  [mergeable]" : "")}{(m.IdentityAtInit ? "  [output unchanged at attach]" : "")}");
                Console.WriteLine($"  where:    {m.Where}");
                Console.WriteLine($"  init:     {m.Init}");
                Console.WriteLine($"  strength: {m.StrengthRule}");
                foreach (var o in m.Options)
                    Console.WriteLine($"  --hp {o.Key}={OptionValues.Format(defaults[o.Key])}".PadRight(40) +
                        $" {o.Description}{(o.Grid is null ? "" : $"; grid {{{string.Join(", ", o.Grid.Select(OptionValues.Format))}}}")}");
                Console.WriteLine();
            }
            var aliases = string.Join(", ", MethodRegistry.Aliases.Select(a => $"{a.Key} = {a.Value}"));
            Console.WriteLine($"aliases: {aliases}; training keys (not method options; peft train --hp takes them as its learning rate and weight decay): {string.Join(", ", MethodRegistry.TrainingKeys)}");
            return 0;
        }));
        return cmd;
    }

    static Option<string[]> HpOption() => new("--hp")
    {
        Description = "Hyperparameters as key=value with the study's keys (repeat, or several after one --hp).",
        AllowMultipleArgumentsPerToken = true,
    };

    static Command Params()
    {
        var preset = new Option<string>("--preset") { Description = "ViT preset: " + string.Join(", ", VitConfig.Presets.Keys), DefaultValueFactory = _ => "vit-b16" };
        var method = new Option<string>("--method") { Description = "Method id (the study's: lora, ssf, ...) or alias.", Required = true };
        var hp = HpOption();
        var cmd = new Command("params", "Prints trainable_params_excl_head=<N> for a method on a preset (the study's \"params\" column).") { preset, method, hp };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var config = VitConfig.Preset(r.GetValue(preset)!);
            var options = MethodRegistry.Create(r.GetValue(method)!, MethodRegistry.ParsePairs(r.GetValue(hp) ?? Array.Empty<string>()), config);
            using var vit = new VisionTransformer(config, seed: 0);
            using var model = PeftApi.Attach(vit, options);
            Console.WriteLine($"trainable_params_excl_head={model.TrainableParameterCountExcludingHead}");
            return 0;
        }));
        return cmd;
    }
}
