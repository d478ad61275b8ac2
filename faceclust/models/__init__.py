"""The pretrained dlib models, read from the installed ``face_recognition_models`` package."""
