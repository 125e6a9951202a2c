from fastapi import FastAPI
app = FastAPI()

@app.get("/hello")
def hi():
    return {"msg": "Hello from HMS!"}
