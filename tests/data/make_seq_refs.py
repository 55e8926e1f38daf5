"""Reference values for tests/unit/test_seq_layers.c from PyTorch.

Every case builds a torch.nn module (float64 unless its name ends in
_f32), random inputs and random cotangents c_*, and stores:
  <case>.param.<name>  the module's state dict (fern loads it by name)
  <case>.in.<name>     inputs (x, h0, c0, query, key, value, masks, tokens)
  <case>.c.<name>      cotangent of each output
  <case>.out.<name>    outputs (out, h_n, c_n, weights)
  <case>.grad.<name>   gradient of  sum_k sum(output_k * c_k)  with respect
                       to every float input and every parameter
Written as one .npz archive (path in argv[1])."""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

out_path = sys.argv[1]
os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
torch.manual_seed(0)
refs = {}


def put(case, kind, name, t):
    refs["%s.%s.%s" % (case, kind, name)] = t.detach().cpu().numpy().copy()


def record(case, module, inputs, run):
    """inputs: dict name -> tensor (float ones get gradients); run(module,
    inputs) -> dict name -> output tensor."""
    module.eval()
    for k, v in module.state_dict().items():
        put(case, "param", k, v)
    for k, v in inputs.items():
        if v.dtype.is_floating_point and not k.endswith("mask"):
            v.requires_grad_(True)
        put(case, "in", k, v)
    outs = run(module, inputs)
    loss = 0
    for k, o in outs.items():
        c = torch.randn_like(o)
        put(case, "c", k, c)
        put(case, "out", k, o)
        loss = loss + (o * c).sum()
    params = dict(module.named_parameters())
    wrt = [v for k, v in inputs.items() if v.requires_grad] + list(params.values())
    grads = torch.autograd.grad(loss, wrt)
    names = [k for k, v in inputs.items() if v.requires_grad] + list(params.keys())
    for k, g in zip(names, grads):
        put(case, "grad", k, g)


# ---- recurrent layers ------------------------------------------------------------

def rnn_case(case, cls, input_size, hidden, N, T, h0=False, batch_first=True, unbatched=False,
             dtype=torch.float64, **kw):
    m = cls(input_size, hidden, batch_first=batch_first, **kw).to(dtype)
    D = 2 if m.bidirectional else 1
    L = m.num_layers
    if unbatched:
        x = torch.randn(T, input_size, dtype=dtype)
        sshape = (L * D, hidden)
    else:
        x = torch.randn(N, T, input_size, dtype=dtype) if batch_first else \
            torch.randn(T, N, input_size, dtype=dtype)
        sshape = (L * D, N, hidden)
    inputs = {"x": x}
    lstm = cls is nn.LSTM
    if h0:
        inputs["h0"] = torch.randn(*sshape, dtype=dtype)
        if lstm:
            inputs["c0"] = torch.randn(*sshape, dtype=dtype)

    def run(m, i):
        if h0:
            state = (i["h0"], i["c0"]) if lstm else i["h0"]
            y, st = m(i["x"], state)
        else:
            y, st = m(i["x"])
        if lstm:
            return {"out": y, "h_n": st[0], "c_n": st[1]}
        return {"out": y, "h_n": st}

    record(case, m, inputs, run)


rnn_case("rnn_tanh", nn.RNN, 5, 4, 3, 6)
rnn_case("rnn_relu_2bi_h0", nn.RNN, 5, 4, 3, 6, h0=True, num_layers=2, bidirectional=True,
         nonlinearity="relu")
rnn_case("lstm", nn.LSTM, 5, 4, 3, 6)
rnn_case("lstm_2_h0", nn.LSTM, 5, 4, 3, 6, h0=True, num_layers=2)
rnn_case("lstm_2bi_h0_tm", nn.LSTM, 5, 4, 3, 6, h0=True, num_layers=2, bidirectional=True,
         batch_first=False)
rnn_case("lstm_nobias_unbatched", nn.LSTM, 5, 4, 1, 7, h0=True, unbatched=True, bias=False)
rnn_case("gru", nn.GRU, 5, 4, 3, 6)
rnn_case("gru_2bi_h0", nn.GRU, 5, 4, 3, 6, h0=True, num_layers=2, bidirectional=True)
rnn_case("lstm_f32", nn.LSTM, 5, 4, 3, 6, h0=True, dtype=torch.float32)


def step_case(case, cls, N, **kw):
    m = cls(5, 4, **kw).double()
    inputs = {"x": torch.randn(N, 5, dtype=torch.float64), "h": torch.randn(N, 4, dtype=torch.float64)}
    lstm = cls is nn.LSTMCell
    if lstm:
        inputs["c"] = torch.randn(N, 4, dtype=torch.float64)

    def run(m, i):
        if lstm:
            h, c = m(i["x"], (i["h"], i["c"]))
            return {"h": h, "c": c}
        return {"h": m(i["x"], i["h"])}

    record(case, m, inputs, run)


step_case("rnn_cell", nn.RNNCell, 3, nonlinearity="tanh")
step_case("lstm_cell", nn.LSTMCell, 3)
step_case("gru_cell", nn.GRUCell, 3)

# ---- attention ---------------------------------------------------------------------

E, H = 8, 2


def mha_case(case, self_attn, batch_first=True, kpm=None, am=None, average=True, unbatched=False,
             N=2, L=5, S=5):
    m = nn.MultiheadAttention(E, H, batch_first=batch_first).double()
    with torch.no_grad():  # non-zero biases so their gradients are exercised
        m.in_proj_bias.normal_()
        m.out_proj.bias.normal_()

    def shape(n):
        if unbatched:
            return (n, E)
        return (N, n, E) if batch_first else (n, N, E)

    inputs = {}
    if self_attn:
        inputs["query"] = torch.randn(*shape(L), dtype=torch.float64)
    else:
        inputs["query"] = torch.randn(*shape(L), dtype=torch.float64)
        inputs["key"] = torch.randn(*shape(S), dtype=torch.float64)
        inputs["value"] = torch.randn(*shape(S), dtype=torch.float64)
    if kpm is not None:
        inputs["key_padding_mask"] = kpm
    if am is not None:
        inputs["attn_mask"] = am

    def run(m, i):
        q = i["query"]
        k = q if self_attn else i["key"]
        v = q if self_attn else i["value"]
        o, w = m(q, k, v, key_padding_mask=i.get("key_padding_mask"), need_weights=True,
                 attn_mask=i.get("attn_mask"), average_attn_weights=average)
        return {"out": o, "weights": w}

    record(case, m, inputs, run)


mha_case("mha_self", True)
kpm = torch.tensor([[False, False, False, True, True, False, False],
                    [False, True, False, False, False, False, True]])
mha_case("mha_cross_masks", False, kpm=kpm, am=torch.randn(4, 7, dtype=torch.float64), average=False,
         L=4, S=7)
bool3 = torch.rand(2 * H, 5, 6) < 0.3
bool3[..., 0] = False  # every query keeps a key
mha_case("mha_bool3d_tm", False, batch_first=False, am=bool3, L=5, S=6)
mha_case("mha_unbatched", True, unbatched=True, kpm=torch.tensor([False, True, False, False, True]))
mha_case("mha_causal", True, am=nn.Transformer.generate_square_subsequent_mask(5).double())

# ---- transformer encoder layers -----------------------------------------------------


def enc_case(case, norm_first, activation, batch_first, src_mask=None, kpm=None, N=2, S=5):
    m = nn.TransformerEncoderLayer(E, H, 16, dropout=0.1, activation=activation, batch_first=batch_first,
                                   norm_first=norm_first).double()
    with torch.no_grad():  # non-trivial norms and attention biases
        for name, p in m.named_parameters():
            if "norm" in name or "bias" in name:
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(N, S, E, dtype=torch.float64) if batch_first else torch.randn(S, N, E, dtype=torch.float64)
    inputs = {"src": x}
    if src_mask is not None:
        inputs["src_mask"] = src_mask
    if kpm is not None:
        inputs["src_key_padding_mask"] = kpm

    def run(m, i):
        return {"out": m(i["src"], src_mask=i.get("src_mask"), src_key_padding_mask=i.get("src_key_padding_mask"))}

    record(case, m, inputs, run)


enc_case("enc_post_relu", False, "relu", True,
         kpm=torch.tensor([[False, False, False, True, False], [False, True, False, False, False]]))
enc_case("enc_pre_gelu_tm", True, "gelu", False,
         src_mask=nn.Transformer.generate_square_subsequent_mask(5).double())

# ---- zoo models -----------------------------------------------------------------------


class LSTMClassifier(nn.Module):
    def __init__(self, vocab, embed_dim, hidden, num_layers, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, tokens):
        _, (h_n, _) = self.lstm(self.embedding(tokens))
        return self.fc(h_n[-1])


class TransformerLM(nn.Module):
    def __init__(self, vocab, d_model, nhead, num_layers, dim_ff, max_len):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.drop = nn.Dropout(0.1)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_ff, 0.1, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        T = tokens.shape[1]
        x = self.drop(self.tok_emb(tokens) + self.pos_emb.weight[:T])
        mask = nn.Transformer.generate_square_subsequent_mask(T).to(x.dtype)
        return self.head(self.encoder(x, mask=mask))


def zoo_case(case, m, tokens):
    m = m.double()
    record(case, m, {"tokens": tokens}, lambda m, i: {"out": m(i["tokens"])})


zoo_case("lstm_classifier", LSTMClassifier(11, 6, 5, 2, 3), torch.randint(0, 11, (4, 7)))
zoo_case("transformer_lm", TransformerLM(13, 8, 2, 2, 16, 10), torch.randint(0, 13, (2, 7)))

np.savez(out_path, **refs)
print("wrote %d arrays to %s" % (len(refs), out_path))
