using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;

namespace PeftWorkbench.Peft;

/// <summary>
/// The entry point: <c>var model = Peft.Attach(vit, new LoraOptions { Rank = 8 }); model.Summary();</c> or,
/// with the study's names, <c>Peft.Attach(vit, "lora", new Dictionary&lt;string, string&gt; { ["lora_bottleneck"] = "8" })</c>.
/// </summary>
public static class Peft
{
    public static IReadOnlyList<PeftMethod> Methods => MethodRegistry.All;

    /// <summary>
    /// Attaches the method <paramref name="options"/> configures to <paramref name="vit"/> (in place: its slots
    /// are wrapped) and returns the model to train. With a seed, the method's initial tensors are the same
    /// on every run. The head is not replaced: call vit.ResetHead(classes) first for a new task.
    /// </summary>
    public static PeftModel Attach(VisionTransformer vit, PeftOptions options, long? seed = null)
    {
        ArgumentNullException.ThrowIfNull(vit);
        ArgumentNullException.ThrowIfNull(options);
        if (Attached.TryGetValue(vit, out _) || vit.modules().Any(m => m is IPeftWrapper))
            throw new InvalidOperationException("This ViT already has a PEFT method attached: Detach() it first, or attach to a fresh backbone.");
        options.Validate(vit.Config);

        var fingerprint = BackboneFingerprint.Compute(vit);
        var requiresGrad = vit.named_parameters().ToDictionary(p => p.name, p => p.parameter.requires_grad);
        var ctx = new AttachContext(vit, new PeftState());
        if (seed is long s) torch.manual_seed(s);
        try { options.Attach(ctx); }
        catch
        {
            for (int i = ctx.Undo.Count - 1; i >= 0; i--) ctx.Undo[i]();
            throw;
        }
        var model = new PeftModel(vit, options, ctx, fingerprint, requiresGrad);
        Attached.Add(vit, model);
        return model;
    }

    /// <summary>ViTs with a method attached (methods that only choose what trains leave no wrapper to detect).</summary>
    internal static readonly System.Runtime.CompilerServices.ConditionalWeakTable<VisionTransformer, PeftModel> Attached = new();

    /// <summary>Attaches a method by the study's id (or an alias) with the study's hyperparameter keys, e.g. ("lora", {lora_bottleneck: "8"}).</summary>
    public static PeftModel Attach(VisionTransformer vit, string method, IReadOnlyDictionary<string, string>? hyperparameters = null, long? seed = null) =>
        Attach(vit, MethodRegistry.Create(method, hyperparameters, vit.Config), seed);
}
