using PeftWorkbench.Peft;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Peft;

using Peft = global::PeftWorkbench.Peft.Peft;

/// <summary>
/// Modules call their submodules with .call, not .forward, so a forward hook a user registers on a method's inner
/// module (to read its activations) runs, as in PyTorch.
/// </summary>
public class ForwardHookTests
{
    [Theory]
    [InlineData("lora", "blocks.0.attn.qkv.lora_A", "blocks.1.attn.qkv.lora_B", "blocks.0.attn.qkv.lora_dropout")]
    [InlineData("convpass", "blocks.0.attn.adapter.adapter_down", "blocks.0.mlp.adapter.adapter_conv", "blocks.1.attn.adapter.adapter_up", "blocks.1.mlp.adapter.act")]
    [InlineData("repadapter", "blocks.0.attn.qkv.conv_A", "blocks.1.mlp.fc1.conv_B", "blocks.0.attn.qkv.dropout")]
    [InlineData("fact_tt", "fact.FacTu", "fact.FacTv", "blocks.0.attn.qkv.q_FacTs", "blocks.1.mlp.fc2.FacTs", "blocks.0.attn.proj.dropout")]
    [InlineData("fact_tk", "fact.FacTu", "fact.FacTv", "blocks.1.mlp.fc1.dropout")]
    public void AHookOnAMethodsInnerModuleRuns(string id, params string[] modules)
    {
        using var vit = MethodMatrixTests.Backbone();
        var model = Peft.Attach(vit, MethodMatrixTests.TinyOptions(id), seed: 1);
        var named = model.named_modules().ToDictionary(m => m.name.StartsWith("model.") ? m.name["model.".Length..] : m.name, m => m.module);
        var calls = modules.ToDictionary(m => m, _ => 0);
        foreach (var name in modules)
            ((nn.Module<Tensor, Tensor>)named[name]).register_forward_hook((m, input, output) => { calls[name]++; return output; });
        model.eval();
        using (torch.no_grad()) model.forward(torch.randn(2, 3, 16, 16));
        Assert.All(calls, c => Assert.True(c.Value > 0, $"{id}: the hook on {c.Key} did not run"));
    }

    [Fact]
    public void AHookOnTheBackboneRunsThroughThePeftModelAndTheTrainer()
    {
        using var vit = TinyData.Vit();
        var model = Peft.Attach(vit, new LoraOptions { Rank = 2 }, seed: 1);
        int calls = 0;
        vit.register_forward_hook((m, input, output) => { calls++; return output; });
        using (torch.no_grad()) model.forward(torch.randn(2, 3, 8, 8));
        Assert.Equal(1, calls);

        using var train = TinyData.Set(16);
        using var eval = TinyData.Set(8, seed: 5);
        calls = 0;
        Trainer.Fit(model, train, eval, new TrainOptions { Epochs = 1, WarmupEpochs = 0, BatchSize = 8, Lr = 1e-2, Device = torch.CPU });
        Assert.Equal(2 + 1, calls); // two training steps, one evaluation batch
    }
}
