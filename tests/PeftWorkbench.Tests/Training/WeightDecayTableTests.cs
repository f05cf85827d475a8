using PeftWorkbench.Peft;
using PeftWorkbench.Tests.Peft;
using PeftWorkbench.Training;

namespace PeftWorkbench.Tests.Training;

using Peft = global::PeftWorkbench.Peft.Peft;

/// <summary>
/// The weight-decay groups (timm's exemptions) of every method on the tiny ViT, as the trainer builds them from
/// the attached model. The table was computed from the name-fragment rule before modules declared their own
/// no-decay tensors, so moving the rule into the modules cannot change who decays. Block indices read "*".
/// </summary>
public class WeightDecayTableTests
{
    static readonly Dictionary<string, string> Expected = new()
    {
        ["linear"] = "decay: model.head.weight | no decay: model.head.bias",
        ["full"] = "decay: model.blocks.*.attn.proj.weight model.blocks.*.attn.qkv.weight model.blocks.*.mlp.fc1.weight model.blocks.*.mlp.fc2.weight model.head.weight model.patch_embed.proj.weight | no decay: model.blocks.*.attn.proj.bias model.blocks.*.attn.qkv.bias model.blocks.*.mlp.fc1.bias model.blocks.*.mlp.fc2.bias model.blocks.*.norm1.bias model.blocks.*.norm1.weight model.blocks.*.norm2.bias model.blocks.*.norm2.weight model.cls_token model.head.bias model.norm.bias model.norm.weight model.patch_embed.proj.bias model.pos_embed",
        ["bitfit"] = "decay: model.head.weight | no decay: model.blocks.*.attn.proj.bias model.blocks.*.attn.qkv.bias model.blocks.*.mlp.fc1.bias model.blocks.*.mlp.fc2.bias model.blocks.*.norm1.bias model.blocks.*.norm2.bias model.head.bias model.norm.bias model.patch_embed.proj.bias",
        ["ln"] = "decay: model.head.weight | no decay: model.blocks.*.norm1.bias model.blocks.*.norm1.weight model.blocks.*.norm2.bias model.blocks.*.norm2.weight model.head.bias model.norm.bias model.norm.weight",
        ["difffit"] = "decay: model.head.weight | no decay: model.blocks.*.attn.proj.bias model.blocks.*.attn.qkv.bias model.blocks.*.ls1.gamma model.blocks.*.ls2.gamma model.blocks.*.mlp.fc1.bias model.blocks.*.mlp.fc2.bias model.blocks.*.norm1.bias model.blocks.*.norm1.weight model.blocks.*.norm2.bias model.blocks.*.norm2.weight model.head.bias model.norm.bias model.norm.weight model.patch_embed.proj.bias",
        ["vpt_shallow"] = "decay: model.head.weight | no decay: model.blocks.*.prompt_embeddings model.head.bias",
        ["vpt_deep"] = "decay: model.head.weight | no decay: model.blocks.*.prompt_embeddings model.head.bias",
        ["rand_h_adapter"] = "decay: model.blocks.*.ls1.adapter.down_proj.weight model.blocks.*.ls1.adapter.up_proj.weight model.blocks.*.ls2.adapter.down_proj.weight model.blocks.*.ls2.adapter.up_proj.weight model.head.weight | no decay: model.blocks.*.ls1.adapter.down_proj.bias model.blocks.*.ls1.adapter.up_proj.bias model.blocks.*.ls2.adapter.down_proj.bias model.blocks.*.ls2.adapter.up_proj.bias model.head.bias",
        ["lora_p_adapter"] = "decay: model.blocks.*.ls2.adapter.down_proj.weight model.blocks.*.ls2.adapter.up_proj.weight model.head.weight | no decay: model.blocks.*.ls2.adapter.down_proj.bias model.blocks.*.ls2.adapter.up_proj.bias model.head.bias",
        ["adaptformer"] = "decay: model.blocks.*.mlp.adapter.down_proj.weight model.blocks.*.mlp.adapter.up_proj.weight model.head.weight | no decay: model.blocks.*.mlp.adapter.down_proj.bias model.blocks.*.mlp.adapter.up_proj.bias model.head.bias",
        ["convpass"] = "decay: model.blocks.*.attn.adapter.adapter_conv.weight model.blocks.*.attn.adapter.adapter_down.weight model.blocks.*.attn.adapter.adapter_up.weight model.blocks.*.mlp.adapter.adapter_conv.weight model.blocks.*.mlp.adapter.adapter_down.weight model.blocks.*.mlp.adapter.adapter_up.weight model.head.weight | no decay: model.blocks.*.attn.adapter.adapter_conv.bias model.blocks.*.attn.adapter.adapter_down.bias model.blocks.*.attn.adapter.adapter_up.bias model.blocks.*.mlp.adapter.adapter_conv.bias model.blocks.*.mlp.adapter.adapter_down.bias model.blocks.*.mlp.adapter.adapter_up.bias model.head.bias",
        ["repadapter"] = "decay: model.blocks.*.attn.qkv.conv_A.weight model.blocks.*.attn.qkv.conv_B.weight model.blocks.*.mlp.fc1.conv_A.weight model.blocks.*.mlp.fc1.conv_B.weight model.head.weight | no decay: model.blocks.*.attn.qkv.conv_A.bias model.blocks.*.attn.qkv.conv_B.bias model.blocks.*.mlp.fc1.conv_A.bias model.blocks.*.mlp.fc1.conv_B.bias model.head.bias",
        ["ssf"] = "decay: model.head.weight | no decay: model.blocks.*.attn.proj.ssf_scale model.blocks.*.attn.proj.ssf_shift model.blocks.*.attn.qkv.ssf_scale model.blocks.*.attn.qkv.ssf_shift model.blocks.*.mlp.fc1.ssf_scale model.blocks.*.mlp.fc1.ssf_shift model.blocks.*.mlp.fc2.ssf_scale model.blocks.*.mlp.fc2.ssf_shift model.blocks.*.norm1.ssf_scale model.blocks.*.norm1.ssf_shift model.blocks.*.norm2.ssf_scale model.blocks.*.norm2.ssf_shift model.head.bias model.norm.ssf_scale model.norm.ssf_shift model.patch_embed.proj.ssf_scale model.patch_embed.proj.ssf_shift",
        ["lora"] = "decay: model.blocks.*.attn.qkv.lora_A.weight model.blocks.*.attn.qkv.lora_B.weight model.head.weight | no decay: model.head.bias",
        ["fact_tt"] = "decay: fact.FacTu.weight fact.FacTv.weight model.blocks.*.attn.proj.FacTs.weight model.blocks.*.attn.qkv.k_FacTs.weight model.blocks.*.attn.qkv.q_FacTs.weight model.blocks.*.attn.qkv.v_FacTs.weight model.blocks.*.mlp.fc1.FacTs.weight model.blocks.*.mlp.fc2.FacTs.weight model.head.weight | no decay: model.head.bias",
        ["fact_tk"] = "decay: fact.FacTc fact.FacTp fact.FacTu.weight fact.FacTv.weight model.head.weight | no decay: model.head.bias",
    };

    public static TheoryData<string> StudyMethods()
    {
        var data = new TheoryData<string>();
        foreach (var id in Expected.Keys) data.Add(id);
        return data;
    }

    static string Groups(string id)
    {
        using var vit = MethodMatrixTests.Backbone();
        using var model = Peft.Attach(vit, MethodMatrixTests.TinyOptions(id), seed: 1);
        var (decay, noDecay) = WeightDecayGroups.Split(model);
        static string Names(IEnumerable<(string Name, TorchSharp.Modules.Parameter Param)> g) => string.Join(" ",
            g.Select(p => System.Text.RegularExpressions.Regex.Replace(p.Name, @"\.\d+\.", ".*.")).Distinct().OrderBy(n => n, StringComparer.Ordinal));
        return $"decay: {Names(decay)} | no decay: {Names(noDecay)}";
    }

    [Theory]
    [MemberData(nameof(StudyMethods))]
    public void GroupsEqualTheTableComputedBeforeModulesDeclaredThem(string id) =>
        Assert.Equal(Expected[id], Groups(id));

    [Fact]
    public void TheTableCoversEveryStudyMethod() =>
        Assert.Equal(MethodRegistry.BuiltIn.Select(m => m.Id).OrderBy(s => s), Expected.Keys.OrderBy(s => s));
}
