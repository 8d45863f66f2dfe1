"""Faster training of the spec's model on a CPU: same layers, same weights, same math.

Keras runs an LSTM on the CPU as a loop that, at every one of the 30 time steps, multiplies that
step's input by the input kernel and lets autodiff record every small op. For the first layer that
input projection (1662 -> 256) is most of the network's FLOPs, and the per-op overhead of a few
thousand small ops per batch is most of the rest. Here, only during training:

- the first LSTM's input projection is one matrix product over all 30 steps (what the cuDNN
  kernel does on a GPU), and its weight gradient one product too; the other two LSTMs run forward
  in TensorFlow's fused BlockLSTMV2 kernel (all steps in one op);
- the backward pass through time is written out, with each weight gradient one product over all
  steps instead of 30 small ones, and the first layer's unneeded input gradient never computed;
- Adam's update is TensorFlow's fused ResourceApplyAdam kernel on Keras' own slot variables (one
  pass over each weight instead of ~10);
- float32 batches are cut once and kept by a tf.data pipeline (signtrain.training.batches), 16 steps run
  per call (steps_per_execution), and validation (inference mode) runs in batches of 256.

Nothing else changes: the model object is the spec's Sequential (or the --normalize functional
model) with the spec's layers and variables, BatchNorm, Dropout and Dense layers run as themselves,
and what is saved, evaluated and shipped is that model, run by Keras' own code. Only the model's
train_step is replaced, and only on a CPU: on a GPU Keras already uses the fused cuDNN kernel.
"""

from signtrain.model import network as model_lib


def lstm_function(tf, units, return_sequences, needs_input_gradient):
    """A function (x, kernel, recurrent_kernel, bias) -> the LSTM layer's output, with its gradient.

    The math is Keras' LSTMCell: gates in the order input, forget, cell, output; sigmoid gates,
    tanh activation, zero initial state.

    Forward: for the first layer (its input is data, no input gradient needed) the input
    projection of all 30 steps is one product, then an unrolled loop does the recurrence. For the
    other layers TensorFlow's fused BlockLSTMV2 kernel runs all steps in one op; it computes exactly
    Keras' math (same "ifco" gate layout, no forget bias, no peepholes, cell_clip 0 = off).
    Backward: written out here (backpropagation through time), with the weight gradients of all
    steps as one product each. (TensorFlow's own BlockLSTMGradV2 was slower here, and the
    gradient TensorFlow registers for BlockLSTMV2 calls the V1 kernel, whose gate layout differs.)
    """

    def loop_forward(x, kernel, recurrent_kernel, bias):
        batch, steps, features = tf.shape(x)[0], x.shape[1], x.shape[2]
        # The product on the batch-major input, then the (4 times narrower) result made time-major.
        projected = tf.matmul(tf.reshape(x, (-1, features)), kernel) + bias
        projected = tf.transpose(tf.reshape(projected, (batch, steps, 4 * units)), (1, 0, 2))
        h = c = tf.zeros((batch, units), x.dtype)
        kept = {name: [] for name in ("i", "c", "f", "o", "g", "tanh_c", "h")}
        for step_projection in tf.unstack(projected):
            z = step_projection + tf.matmul(h, recurrent_kernel)
            i, f, _, o = tf.split(tf.sigmoid(z), 4, axis=1)
            g = tf.tanh(z[:, 2 * units:3 * units])
            c = f * c + i * g
            tanh_c = tf.tanh(c)
            h = o * tanh_c
            for name, value in (("i", i), ("c", c), ("f", f), ("o", o), ("g", g), ("tanh_c", tanh_c), ("h", h)):
                kept[name].append(value)
        return [tf.stack(kept[name]) for name in ("i", "c", "f", "o", "g", "tanh_c", "h")]

    def block_forward(x, kernel, recurrent_kernel, bias):
        time_major = tf.transpose(x, (1, 0, 2))
        batch = tf.shape(time_major)[1]
        zeros = tf.zeros((batch, units), time_major.dtype)
        no_peephole = tf.zeros((units,), time_major.dtype)
        # Outputs (time-major): input gate, cell state, forget gate, output gate, cell input, tanh(cell), h.
        return tf.raw_ops.BlockLSTMV2(
            seq_len_max=tf.cast(tf.shape(time_major)[0], tf.int64), x=time_major, cs_prev=zeros, h_prev=zeros,
            w=tf.concat([kernel, recurrent_kernel], axis=0), wci=no_peephole, wcf=no_peephole, wco=no_peephole,
            b=bias, cell_clip=0.0, use_peephole=False)

    @tf.custom_gradient
    def lstm(x, kernel, recurrent_kernel, bias):
        steps, features = x.shape[1], x.shape[2]
        forward = block_forward if needs_input_gradient else loop_forward
        i, c, f, o, g, tanh_c, h = forward(x, kernel, recurrent_kernel, bias)
        result = tf.transpose(h, (1, 0, 2)) if return_sequences else h[-1]

        def gradient(upstream):
            # With dh and dc the gradients reaching step t's h and c:
            #   dc_t = dc_{t+1} * f_{t+1} + dh * o * (1 - tanh(c)^2)
            #   dz_t = [dc*g*i(1-i), dc*c_prev*f(1-f), dc*i(1-g^2), dh*tanh(c)*o(1-o)]
            #   dh_{t-1} = dz_t @ recurrent_kernel^T
            # Factors that do not depend on the gradients are computed for all steps at once.
            zeros = tf.zeros_like(c[:1])
            c_before, h_before = tf.concat([zeros, c[:-1]], axis=0), tf.concat([zeros, h[:-1]], axis=0)
            to_dc = tf.unstack(o * (1.0 - tanh_c * tanh_c))
            to_dz = tf.unstack(tf.concat([g * i * (1.0 - i), c_before * f * (1.0 - f), i * (1.0 - g * g),
                                          tanh_c * o * (1.0 - o)], axis=2))
            forget = tf.unstack(f)
            upstream_steps = tf.unstack(tf.transpose(upstream, (1, 0, 2))) if return_sequences else None
            # A Snapshot (a copy) of the transposed kernel: a Transpose feeding a product directly is
            # folded by the graph optimizer into a transpose_b product, which measured 4-5x slower per
            # step for these small shapes (16 x 512 by 512 x 128: 7.2 ms against 1.8 ms for 30 steps).
            recurrent_t = tf.raw_ops.Snapshot(input=tf.transpose(recurrent_kernel))
            dh_next = dc_next = None
            dz_steps = [None] * steps
            for t in reversed(range(steps)):
                if return_sequences:
                    dh = upstream_steps[t] if dh_next is None else upstream_steps[t] + dh_next
                else:
                    dh = upstream if dh_next is None else dh_next
                dc = dh * to_dc[t] if dc_next is None else dc_next + dh * to_dc[t]
                dz_steps[t] = tf.concat([dc, dc, dc, dh], axis=1) * to_dz[t]
                if t > 0:
                    dh_next = tf.matmul(dz_steps[t], recurrent_t)
                    dc_next = dc * forget[t]
            dz_time_major = tf.stack(dz_steps)
            # The weight gradients summed over all steps: one product each, the input's on the
            # batch-major rows as they are (only the narrower dz is transposed).
            dz_all = tf.reshape(tf.transpose(dz_time_major, (1, 0, 2)), (-1, 4 * units))
            d_kernel = tf.matmul(tf.reshape(x, (-1, features)), dz_all, transpose_a=True)
            d_recurrent = tf.matmul(tf.reshape(h_before, (-1, units)), tf.reshape(dz_time_major, (-1, 4 * units)),
                                    transpose_a=True)
            d_bias = tf.reduce_sum(dz_all, axis=0)
            if not needs_input_gradient:  # the input is data: no gradient (None costs nothing)
                return None, d_kernel, d_recurrent, d_bias
            d_x = tf.reshape(tf.matmul(dz_all, kernel, transpose_b=True), tf.shape(x))
            return d_x, d_kernel, d_recurrent, d_bias

        return result, gradient

    return lstm


# Batches per call into the compiled training function: fewer Python round trips per epoch.
STEPS_PER_EXECUTION = 16


# Keras internals install() uses (Keras has no public seam for a custom step that keeps its loss
# tracking, nor for Adam's slots). Present in every Keras this project tested: 3.10.0 (Colab's) and
# 3.15.1; pyproject.toml's keras range. A Keras without one of them trains with Keras' own loop.
PRIVATE_MODEL_API = ("_compute_loss", "_loss_tracker")
PRIVATE_ADAM_API = ("_get_variable_index", "_momentums", "_velocities")


def missing_private_api():
    """The private Keras names install() needs that this Keras lacks, checked on a tiny compiled
    model with a built Adam ([] when everything is there)."""
    from tensorflow import keras

    probe = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    probe.compile(optimizer="adam", loss="mse")
    probe.optimizer.build(probe.trainable_variables)
    return ([f"Model.{name}" for name in PRIVATE_MODEL_API if not hasattr(probe, name)]
            + [f"Adam.{name}" for name in PRIVATE_ADAM_API if not hasattr(probe.optimizer, name)])


def available():
    """True where the fast path is the default: no GPU (there Keras uses the fused cuDNN kernel) and
    a Keras that has what install() needs (else one warning, and Keras' own loop)."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return False
    missing = missing_private_api()
    if missing:
        import warnings

        from tensorflow import keras

        warnings.warn(f"signtrain's fast CPU training path needs Keras internals that Keras {keras.__version__} "
                      f"lacks ({', '.join(missing)}); training with Keras' own loop instead (the same model, "
                      f"slower). Tested with Keras 3.10-3.15.", stacklevel=2)
        return False
    return True


def supported(model):
    """True where the fast path computes exactly what the model's layers compute."""
    from tensorflow import keras

    lstm_positions = [i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.LSTM)]
    # The plan runs the layers from the first LSTM on; a Sequential's layers before it would be lost.
    if not lstm_positions or (isinstance(model, keras.Sequential) and lstm_positions[0] != 0):
        return False
    for layer in model.layers:
        if isinstance(layer, keras.layers.LSTM):
            cell = layer.cell
            if layer.go_backwards or layer.stateful or layer.unroll or cell.dropout or cell.recurrent_dropout:
                return False
            if (cell.activation is not keras.activations.tanh or not cell.use_bias
                    or cell.recurrent_activation is not keras.activations.sigmoid):
                return False
    return True


def _fused_adam_update(optimizer):
    """Keras' Adam update_step as TensorFlow's fused ResourceApplyAdam kernel: one op per variable.

    Keras writes Adam as ~10 element-wise ops per variable, each a pass over the weights: ~4 ms of
    a ~30 ms training step here, most of it on the first LSTM's 1662 x 256 kernel. The fused kernel computes
    the same formula in the same order (m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2);
    w -= m * alpha / (sqrt(v) + epsilon), alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)) in one
    pass, on Keras' own slot variables; Keras still counts the iterations, scales and clips.
    Returns None where the optimizer is not a plain Adam (amsgrad, weight decay, EMA): Keras' own
    update then runs.
    """
    import tensorflow as tf
    from tensorflow import keras

    if (type(optimizer) is not keras.optimizers.Adam or optimizer.amsgrad or optimizer.weight_decay
            or optimizer.use_ema):
        return None

    def update_step(gradient, variable, learning_rate):
        index = optimizer._get_variable_index(variable)
        dtype = variable.dtype
        step = tf.cast(optimizer.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(optimizer.beta_1, dtype), tf.cast(optimizer.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=optimizer._momentums[index].value.handle,
            v=optimizer._velocities[index].value.handle, beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(optimizer.epsilon, dtype), grad=tf.cast(gradient, dtype), use_locking=False)

    return update_step


def install(model):
    """Give a compiled model the fast train_step and test_step. Returns the model.

    predict(), saving and loading stay Keras' own (evaluate() would use the fast forward pass, which
    computes the same; signtrain scores the reloaded model, which has neither step).
    """
    import tensorflow as tf
    from tensorflow import keras

    if not supported(model):
        raise ValueError("fast training supports only the spec's LSTM configuration (tanh, sigmoid gates, "
                         "bias on, no dropout inside the LSTM, no unroll); train with --no-fast")
    prefix, chain = model_lib.front_end_and_stack(model)
    kernels = {}
    for position, layer in enumerate(chain):
        if isinstance(layer, keras.layers.LSTM):
            # The first LSTM's input is data (or fixed preprocessing): its input gradient is not needed.
            kernels[id(layer)] = lstm_function(tf, layer.cell.units, layer.return_sequences,
                                                        needs_input_gradient=position > 0)

    def forward(x, training):
        outputs = prefix(x, training=training) if prefix is not None else x
        for layer in chain:
            if isinstance(layer, keras.layers.LSTM):
                cell = layer.cell
                outputs = kernels[id(layer)](outputs, tf.convert_to_tensor(cell.kernel),
                                             tf.convert_to_tensor(cell.recurrent_kernel),
                                             tf.convert_to_tensor(cell.bias))
            else:
                outputs = layer(outputs, training=training)
        return outputs

    # Keras' own TensorFlow train_step and test_step, with the forward pass above.
    def train_step(data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            y_pred = forward(x, training=True)
            loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=None, training=True)
            model._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
            loss = model.optimizer.scale_loss(loss)
        weights = model.trainable_weights
        model.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return model.compute_metrics(x, y, y_pred, sample_weight=None)

    def test_step(data):
        x, y = data[0], data[1]
        y_pred = forward(x, training=False)
        loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=None, training=False)
        model._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        return model.compute_metrics(x, y, y_pred, sample_weight=None)

    model.train_step, model.test_step = train_step, test_step
    fused = _fused_adam_update(model.optimizer)
    if fused is not None:
        model.optimizer.update_step = fused
    model.steps_per_execution = STEPS_PER_EXECUTION
    model.train_function = model.test_function = None  # rebuilt by the next fit
    return model
