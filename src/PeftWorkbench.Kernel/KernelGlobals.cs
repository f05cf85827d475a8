using PeftWorkbench.Kernel.Execution;

namespace PeftWorkbench.Kernel;

/// <summary>What every cell sees as globals: the cell's cancellation token, the run profile, and display().</summary>
public class KernelGlobals
{
    readonly ScriptEngine engine;
    internal KernelGlobals(ScriptEngine engine, string profile) { this.engine = engine; Profile = profile; }

    /// <summary>Cancelled when the user interrupts the running cell; pass it to long loops (the Trainer takes it).</summary>
    public CancellationToken Cancellation => CellContext.Current?.Token ?? CancellationToken.None;

    /// <summary>The run profile (smoke, default, mini-full, paper): $PEFT_PROFILE, else "default"; a `parameters` cell may set it.</summary>
    public string Profile { get; set; }

    /// <summary>Shows a value below the cell now; the handle's Update(x) replaces it in place (live progress).</summary>
    public DisplayHandle display(object? value) => engine.Display(value);
}

/// <summary>A value shown with display(x): Update(x) redraws it where it is.</summary>
public sealed class DisplayHandle
{
    readonly ScriptEngine engine;
    public string DisplayId { get; }
    internal DisplayHandle(ScriptEngine engine, string displayId) { this.engine = engine; DisplayId = displayId; }

    public void Update(object? value) => engine.UpdateDisplay(DisplayId, value);
    public override string ToString() => $"DisplayHandle {DisplayId}";
}

public static class DisplayExtensions
{
    /// <summary>x.Display(): the .NET Interactive spelling of display(x).</summary>
    public static DisplayHandle Display(this object? value) =>
        (CellContext.Current?.Engine ?? ScriptEngine.LastActive
         ?? throw new InvalidOperationException("Display() works only inside a notebook cell run by the PeftWorkbench kernel."))
        .Display(value);
}
