// A small N-API addon: compiled by node-gyp during `npm install` in the build stage.
#include <napi.h>

#include <cstdint>
#include <string>

static Napi::Value Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "add(a, b) takes two numbers").ThrowAsJavaScriptException();
    return env.Null();
  }
  double sum = info[0].As<Napi::Number>().DoubleValue() + info[1].As<Napi::Number>().DoubleValue();
  return Napi::Number::New(env, sum);
}

// FNV-1a over the UTF-8 bytes: a result JavaScript did not compute
static Napi::Value Fnv1a(const Napi::CallbackInfo& info) {
  std::string text = info[0].ToString().Utf8Value();
  uint32_t hash = 2166136261u;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 16777619u;
  }
  return Napi::Number::New(info.Env(), hash);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("fnv1a", Napi::Function::New(env, Fnv1a));
  return exports;
}

NODE_API_MODULE(addon, Init)
