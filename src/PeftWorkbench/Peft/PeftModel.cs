using PeftWorkbench.Training;
using System.Globalization;
using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>
/// A ViT with one PEFT method attached (Peft.Attach). Forward is the ViT's forward with the method in
/// place. What trains: the method's tensors, the backbone tensors it selects (BitFit's biases, ...) and
/// the head; every other tensor has requires_grad false, so backward never computes its gradient.
/// <para>Strength (the study's "merge factor") scales the method's delta: 0 gives the pre-trained backbone,
/// 1 the fine-tuned one; the head is never scaled (it has no pre-trained value).</para>
/// </summary>
public sealed partial class PeftModel : nn.Module<Tensor, Tensor>
{
    /// <summary>The wrapped ViT (registered as "model"; adapter files drop that prefix).</summary>
    public readonly VisionTransformer model;

    readonly PeftState state;
    readonly List<Action> undo;
    readonly List<IMergeable> mergeables;
    // Tracked by name, not by tensor object: .to(device) replaces the Parameter objects, never the names.
    readonly List<Pretrained> selected;
    readonly Dictionary<string, bool> requiresGradBefore; // every backbone tensor, head included
    readonly List<string> sharedNames;
    readonly TensorBackup selectionBackup = new();
    bool detached;

    public PeftOptions Options { get; }
    public PeftMethod Method => Options.Describe();
    /// <summary>The backbone's shape (class count as at attach time).</summary>
    public VitConfig BackboneConfig { get; }
    /// <summary>A hash of the pre-trained backbone's tensors (head excluded) taken at attach time; see <see cref="BackboneFingerprint"/>.</summary>
    public string BackboneFingerprintValue { get; }

    internal PeftModel(VisionTransformer vit, PeftOptions options, AttachContext ctx, string fingerprint,
        Dictionary<string, bool> requiresGradBefore) : base(nameof(PeftModel))
    {
        model = vit;
        Options = options;
        BackboneConfig = vit.Config;
        BackboneFingerprintValue = fingerprint;
        state = ctx.State;
        undo = ctx.Undo;
        this.requiresGradBefore = requiresGradBefore;
        RegisterComponents();
        sharedNames = new();
        foreach (var (name, module) in ctx.Shared) { register_module(name, module); sharedNames.Add(name); }

        // Trainability: new tensors train, selected backbone tensors and the head train, the rest is frozen.
        var chosen = new HashSet<Parameter>(ctx.Selected, ReferenceEqualityComparer.Instance);
        selected = new();
        foreach (var (name, p) in NamedParameters())
        {
            bool isBackbone = requiresGradBefore.ContainsKey(name), isHead = IsHead(name), isChosen = chosen.Contains(p);
            p.requires_grad = !isBackbone || isHead || isChosen;
            if (isBackbone && isChosen && !isHead)
                using (torch.no_grad()) selected.Add(new Pretrained(name, p.DetachedClone().DetachFromDisposeScope()));
        }
        // Attach may run inside a caller's dispose scope: the method's tensors belong to the model, not to it.
        foreach (var p in parameters()) p.DetachFromDisposeScope();
        mergeables = modules().OfType<IMergeable>().ToList();
    }

    // ---------------------------------------------------------------- forward and strength

    public override Tensor forward(Tensor x) => Run(x, model.call);

    /// <summary>The token sequence after the final norm, with the method (and Strength) applied.</summary>
    public Tensor ForwardFeatures(Tensor x) => Run(x, model.ForwardFeatures);

    Tensor Run(Tensor x, Func<Tensor, Tensor> f)
    {
        if (detached) throw new ObjectDisposedException(nameof(PeftModel), "the method was detached from this ViT");
        double s = state.Strength;
        if (state.Merged)
        {
            if (training && torch.is_grad_enabled())
                throw new InvalidOperationException("The method is merged into the backbone: Unmerge() before training.");
            return f(x);
        }
        if (s == 1) return f(x);
        if (Method.StrengthOnOutput && s > 0)
        {
            // Prompts add tokens, not weights: interpolate the outputs of the pre-trained and tuned passes.
            Tensor y0, y1;
            try { state.Strength = 0; y0 = f(x); state.Strength = 1; y1 = f(x); }
            finally { state.Strength = s; }
            return y0 + (y1 - y0).Times(s);
        }
        if (selected.Count == 0) return f(x);
        // Selected backbone tensors (BitFit, LayerNorm, DiffFit, Full FT): evaluate at pre + s (tuned - pre).
        var current = NamedParameters().ToDictionary(p => p.Name, p => p.Param);
        if (torch.is_grad_enabled() && selected.Any(t => current[t.Name].requires_grad))
            throw new InvalidOperationException($"Strength {s} with {Method.Name} interpolates backbone tensors in place: evaluate under torch.no_grad(), or train at Strength 1.");
        var backup = new TensorBackup();
        try
        {
            using (torch.no_grad())
                foreach (var t in selected) { var p = current[t.Name]; backup.Save(p); p.copy_(Lerp(t.On(p), p, s)); }
            return f(x);
        }
        finally { backup.Restore(); }
    }

    static Tensor Lerp(Tensor pre, Tensor tuned, double s) => pre + (tuned - pre).Times(s);

    /// <summary>A selected backbone tensor's pre-trained value (follows the tensor to its device and dtype).</summary>
    sealed class Pretrained(string name, Tensor value)
    {
        public string Name { get; } = name;
        public Tensor Value { get; private set; } = value;

        public Tensor On(Tensor like)
        {
            if (Value.device != like.device || Value.dtype != like.dtype)
            {
                var moved = Value.to(like.dtype, like.device).DetachFromDisposeScope();
                Value.Dispose();
                Value = moved;
            }
            return Value;
        }
    }

    /// <summary>
    /// The study's merge factor: 0 = the pre-trained model, 1 = the fine-tuned one, in between the method's
    /// delta scaled (see <see cref="PeftMethod.StrengthRule"/> for each method). The head is not scaled.
    /// </summary>
    public double Strength
    {
        get => state.Strength;
        set
        {
            if (double.IsNaN(value) || value < 0 || value > 1)
                throw new ArgumentOutOfRangeException(nameof(Strength), value, "Strength must be in [0, 1] (0 = pre-trained, 1 = fine-tuned).");
            if (state.Merged) throw new InvalidOperationException("Unmerge() before changing Strength: the merged weights hold the current one.");
            state.Strength = value;
        }
    }

    // ---------------------------------------------------------------- merge

    public bool CanMerge => Method.Mergeable;
    public bool IsMerged => state.Merged;

    /// <summary>Folds the method's delta (at the current Strength) into the backbone's tensors; forward then runs the plain ViT.</summary>
    public void Merge()
    {
        if (!CanMerge)
            throw new NotSupportedException($"{Method.Name} ({Method.Id}) cannot be merged into the backbone: it adds modules or tokens, not weight changes. Mergeable: {string.Join(", ", MethodRegistry.All.Where(m => m.Mergeable).Select(m => m.Id))}.");
        if (state.Merged) throw new InvalidOperationException("already merged");
        double s = state.Strength;
        if (s != 1)
        {
            var current = NamedParameters().ToDictionary(p => p.Name, p => p.Param);
            using var _ = torch.no_grad();
            foreach (var t in selected) { var p = current[t.Name]; selectionBackup.Save(p); p.copy_(Lerp(t.On(p), p, s)); }
        }
        foreach (var m in mergeables) m.Merge(s);
        state.Merged = true;
    }

    /// <summary>Restores the backbone's tensors exactly (bit for bit) as they were before Merge.</summary>
    public void Unmerge()
    {
        if (!state.Merged) throw new InvalidOperationException("not merged");
        for (int i = mergeables.Count - 1; i >= 0; i--) mergeables[i].Unmerge();
        selectionBackup.Restore();
        state.Merged = false;
    }

    // ---------------------------------------------------------------- what trains

    /// <summary>Tensors that train, by adapter-file name (the ViT's keys without "model.", shared ones as "fact.*").</summary>
    public IReadOnlyList<(string Name, Parameter Param)> TrainableParameters() =>
        NamedParameters().Where(p => p.Param.requires_grad).ToList();

    /// <summary>Every tensor by adapter-file name.</summary>
    public IEnumerable<(string Name, Parameter Param)> NamedParameters() =>
        named_parameters().Select(p => (p.name.StartsWith("model.") ? p.name["model.".Length..] : p.name, p.parameter));

    public long ParameterCount => parameters().Sum(p => p.numel());
    public long TrainableParameterCount => TrainableParameters().Sum(p => p.Param.numel());
    /// <summary>The study's "params" column: trainable tensors without the classification head.</summary>
    public long TrainableParameterCountExcludingHead => TrainableParameters().Where(p => !IsHead(p.Name)).Sum(p => p.Param.numel());

    static bool IsHead(string name) => name == "head" || name.StartsWith("head.");

    /// <summary>HF PEFT's line: "trainable params: X || all params: Y || trainable%: Z".</summary>
    public string SummaryLine
    {
        get
        {
            long t = TrainableParameterCount, all = ParameterCount;
            var inv = CultureInfo.InvariantCulture;
            return $"trainable params: {t.ToString("N0", inv)} || all params: {all.ToString("N0", inv)} || trainable%: {(100.0 * t / all).ToString("F4", inv)}";
        }
    }

    /// <summary>Prints <see cref="SummaryLine"/> (to the console unless a writer is given).</summary>
    public void Summary(TextWriter? writer = null) => (writer ?? Console.Out).WriteLine(SummaryLine);

    public override string ToString() => $"PeftModel({Options} on {BackboneConfig.Name}; {SummaryLine})";

    // ---------------------------------------------------------------- detach

    /// <summary>
    /// Takes the method off: every slot gets back the module it held, requires_grad flags return to what
    /// they were before Attach, the method's tensors are freed. Returns the ViT (with its tensors as they
    /// are now: training changes to selected backbone tensors and the head stay). This PeftModel is
    /// unusable afterwards.
    /// </summary>
    public VisionTransformer Detach()
    {
        if (detached) throw new InvalidOperationException("already detached");
        if (state.Merged) Unmerge();
        var own = NamedParameters().Where(p => !requiresGradBefore.ContainsKey(p.Name)).Select(p => p.Param).ToList();
        for (int i = undo.Count - 1; i >= 0; i--) undo[i]();
        foreach (var (name, p) in model.named_parameters()) p.requires_grad = requiresGradBefore[name];
        foreach (var p in own) p.Dispose();
        foreach (var t in selected) t.Value.Dispose();
        selected.Clear();
        _internal_submodules.Remove("model");
        Peft.Attached.Remove(model);
        foreach (var name in sharedNames) _internal_submodules.Remove(name);
        detached = true;
        return model;
    }
}
