"""Deployment: ONNX export of a voice (`onnx_export`) and the HTTP server (`server`)."""
