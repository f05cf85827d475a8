"""Writes the checkpoint fixtures in this folder with numpy's and PyTorch's own writers.

The C# tests also write every format by hand from its specification; these files check that real
writers' output loads too. Made with Debian 12's python3-numpy 1.24 and python3-torch 1.13:
    /usr/bin/python3 make_fixtures.py
The ViT is the tests' 2-block shape: 16 px images, 8 px patches, dim 32, 2 heads, MLP 128, 3 classes.
"""
import collections
import numpy as np
import torch

D, H, HD, P, HIDDEN, DEPTH, C = 32, 2, 16, 8, 128, 2, 3
rng = np.random.default_rng(2024)
g = {}


def add(name, *shape):
    g[name] = rng.standard_normal(shape).astype(np.float32)


# Google ViT (Flax) layout.
add('embedding/kernel', P, P, 3, D); add('embedding/bias', D); add('cls', 1, 1, D)
add('Transformer/posembed_input/pos_embedding', 1, 5, D)
add('Transformer/encoder_norm/scale', D); add('Transformer/encoder_norm/bias', D)
add('head/kernel', D, C); add('head/bias', C)
for i in range(DEPTH):
    b = f'Transformer/encoderblock_{i}/'
    m = b + 'MultiHeadDotProductAttention_1/'
    for ln in ('LayerNorm_0', 'LayerNorm_2'):
        add(b + ln + '/scale', D); add(b + ln + '/bias', D)
    add(b + 'MlpBlock_3/Dense_0/kernel', D, HIDDEN); add(b + 'MlpBlock_3/Dense_0/bias', HIDDEN)
    add(b + 'MlpBlock_3/Dense_1/kernel', HIDDEN, D); add(b + 'MlpBlock_3/Dense_1/bias', D)
    for n in ('query', 'key', 'value'):
        add(m + n + '/kernel', D, H, HD); add(m + n + '/bias', H, HD)
    add(m + 'out/kernel', H, HD, D); add(m + 'out/bias', D)
np.savez_compressed('google-2block.npz', **g)

# The same weights in timm's layout, mapped here in numpy (timm's _load_weights).
t = collections.OrderedDict()
t['cls_token'] = g['cls']
t['pos_embed'] = g['Transformer/posembed_input/pos_embedding']
t['patch_embed.proj.weight'] = g['embedding/kernel'].transpose(3, 2, 0, 1)
t['patch_embed.proj.bias'] = g['embedding/bias']
for i in range(DEPTH):
    b, m, o = f'Transformer/encoderblock_{i}/', f'Transformer/encoderblock_{i}/MultiHeadDotProductAttention_1/', f'blocks.{i}.'
    t[o + 'norm1.weight'] = g[b + 'LayerNorm_0/scale']; t[o + 'norm1.bias'] = g[b + 'LayerNorm_0/bias']
    t[o + 'attn.qkv.weight'] = np.concatenate([g[m + n + '/kernel'].reshape(D, -1).T for n in ('query', 'key', 'value')])
    t[o + 'attn.qkv.bias'] = np.concatenate([g[m + n + '/bias'].reshape(-1) for n in ('query', 'key', 'value')])
    t[o + 'attn.proj.weight'] = g[m + 'out/kernel'].transpose(2, 0, 1).reshape(D, -1)
    t[o + 'attn.proj.bias'] = g[m + 'out/bias']
    t[o + 'norm2.weight'] = g[b + 'LayerNorm_2/scale']; t[o + 'norm2.bias'] = g[b + 'LayerNorm_2/bias']
    t[o + 'mlp.fc1.weight'] = g[b + 'MlpBlock_3/Dense_0/kernel'].T; t[o + 'mlp.fc1.bias'] = g[b + 'MlpBlock_3/Dense_0/bias']
    t[o + 'mlp.fc2.weight'] = g[b + 'MlpBlock_3/Dense_1/kernel'].T; t[o + 'mlp.fc2.bias'] = g[b + 'MlpBlock_3/Dense_1/bias']
t['norm.weight'] = g['Transformer/encoder_norm/scale']; t['norm.bias'] = g['Transformer/encoder_norm/bias']
t['head.weight'] = g['head/kernel'].T; t['head.bias'] = g['head/bias']
# Transposed kernels stay non-contiguous views in torch: the file then holds strided tensors.
sd = collections.OrderedDict((k, torch.from_numpy(v.T.copy()).T if v.ndim == 2 and not v.flags['C_CONTIGUOUS']
                              else torch.from_numpy(np.ascontiguousarray(v))) for k, v in t.items())
torch.save({'epoch': 10, 'arch': 'vit_test', 'model': sd}, 'timm-2block.pth')
torch.save(collections.OrderedDict((k, v.half()) for k, v in sd.items()), 'timm-2block-half.pth')

# Odd corners: a Parameter, a view at a storage offset, int64 and bool tensors; numpy's Fortran and big-endian arrays.
torch.save({'w': torch.nn.Parameter(torch.arange(6.).reshape(2, 3)), 'view': torch.arange(10.)[2:8].reshape(2, 3),
            'i': torch.tensor([1, 2, 3]), 'b': torch.tensor([True, False])}, 'misc.pth')
np.save('fortran.npy', np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)))
np.save('big-endian.npy', np.arange(5, dtype='>i8'))


class Evil:
    def __reduce__(self):
        import os
        return (os.system, ('echo this must never run',))


torch.save({'x': Evil()}, 'evil.pth')
torch.jit.save(torch.jit.script(torch.nn.Linear(4, 3)), 'torchscript.pt')
